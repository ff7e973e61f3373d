"""Regenerate ``stylegan_v_long.npz`` / ``.json``: StyleGAN-V's long-video FVD protocols run by its own code on tiny
inputs, with its I3D replaced by a fixed stand-in feature function (``stub_features``) that vgbench's test applies
to its own clips.

StyleGAN-V (universome/stylegan-v, no pip package) is imported from a ``git archive`` of its ``src`` folder; it needs
``omegaconf`` and ``requests`` (installed with pip into a throwaway folder, not vgbench dependencies):

    git --git-dir=MIRROR archive 3fecd69c602e1cda204357201461c0fb0a634909 src | tar -x -C /tmp/sgv
    pip install --target /tmp/sgv-deps omegaconf requests
    PYTHONPATH=/tmp/sgv:/tmp/sgv-deps python tests/golden/make_stylegan_v_long.py --commit 3fecd69c602e...

What runs is StyleGAN-V's: its metric functions ``fvd2048_16f``, ``fvd2048_128f``, ``fvd2048_128f_subsample8f``
(metric_main.py) -> ``compute_fvd`` -> ``compute_feature_stats_for_dataset`` on its ``VideoFramesFolderDataset``
(real videos from random starts, generated ones read as a dataset from frame 0, ``generator_as_dataset``) ->
``FeatureStats`` -> its Fréchet distance. Only the detector is replaced (``get_feature_detector``). Every frame
carries its video and frame index in two pixels, so the frames StyleGAN-V read are recovered from what the
detector was given. Recorded per metric: the parameters it passed to ``compute_fvd``, the (video, frame) indices of
every clip read, the stand-in features, its mean/covariance and its FVD.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
OUT = HERE / "stylegan_v_long"
METRICS = ("fvd2048_16f", "fvd2048_128f", "fvd2048_128f_subsample8f")
SIZE = 4  # frames of 4x4 RGB
FEATURES = 8


def videos() -> dict[str, list[np.ndarray]]:
    """Real videos of several lengths (two too short for the 128-frame protocols, which StyleGAN-V skips) and
    darker generated videos of 136 frames; uint8 (T, 4, 4, 3); pixel (0, 0) holds (video index, frame index, 0)."""
    rng = np.random.default_rng(20)
    real_lengths = [136, 140, 128, 131, 160, 127, 136, 150, 129, 133, 120, 145, 138, 142]
    out = {}
    for role, lengths, top in (("real", real_lengths, 256), ("fake", [136] * 13, 200)):  # fakes are darker
        vids = []
        for i, t in enumerate(lengths):
            v = rng.integers(0, top, (t, SIZE, SIZE, 3), dtype=np.uint8)
            v[:, 0, 0] = np.stack([np.full(t, i), np.arange(t), np.zeros(t)], -1).astype(np.uint8)
            vids.append(v)
        out[role] = vids
    return out


def stub_features(clips: np.ndarray) -> np.ndarray:
    """The stand-in detector: uint8 clips (B, T, H, W, C) -> float32 (B, 8) = tanh(A_T · per-frame means / 255)
    with A_T fixed by T (normal / sqrt(T)); order-sensitive, so a wrong frame selection changes it."""
    b, t = clips.shape[:2]
    means = clips.reshape(b, t, -1).astype(np.float64).mean(-1) / 255.0  # (B, T)
    a = np.random.default_rng(t).standard_normal((t, FEATURES)) / np.sqrt(t)
    return np.tanh(means @ a - 0.5 * a.sum(0)).astype(np.float32)


def write_frames(root: Path, vids: list[np.ndarray]) -> None:
    import PIL.Image

    for i, v in enumerate(vids):
        d = root / f"video{i:03d}"
        d.mkdir(parents=True)
        for j, f in enumerate(v):
            PIL.Image.fromarray(f).save(d / f"{j:05d}.png")


def run_stylegan_v(tmp: Path, vids: dict) -> dict:
    import torch
    from omegaconf import OmegaConf
    from src import dnnlib
    from src.metrics import frechet_video_distance, metric_main, metric_utils

    write_frames(tmp / "real", vids["real"])
    write_frames(tmp / "fake", vids["fake"])
    seen, params, stats = [], [], []

    def detector(images, **kwargs):  # images: uint8 (B, 3, T, H, W), as StyleGAN-V hands them to its I3D
        clips = images.permute(0, 2, 3, 4, 1).cpu().numpy()  # (B, T, H, W, C)
        seen[len(stats)].append(clips[:, :, 0, 0, :2].astype(np.int64))  # (B, T, 2): video index, frame index
        return torch.from_numpy(stub_features(clips))

    metric_utils.get_feature_detector = lambda *a, **k: detector
    original_compute, original_mean_cov = frechet_video_distance.compute_fvd, metric_utils.FeatureStats.get_mean_cov

    def compute_fvd(opts, **kw):
        params.append(kw)
        return original_compute(opts, **kw)

    def get_mean_cov(self):
        mean, cov = original_mean_cov(self)
        stats.append((mean, cov))
        return mean, cov

    frechet_video_distance.compute_fvd = compute_fvd
    metric_utils.FeatureStats.get_mean_cov = get_mean_cov
    cfg = OmegaConf.create({"max_num_frames": 1024})

    def kwargs(path):
        return dnnlib.EasyDict(class_name="src.training.dataset.VideoFramesFolderDataset", path=str(path), cfg=cfg,
                               resolution=256, use_labels=False, xflip=False)  # fmt: skip

    out = {}
    for name in METRICS:
        random.seed(0)
        torch.manual_seed(0)  # DataLoader workers seed Python's random from torch's generator
        opts = metric_utils.MetricOptions(
            G=None, dataset_kwargs=kwargs(tmp / "real"), num_gpus=1, rank=0, device=torch.device("cpu"), cache=False,
            gen_dataset_kwargs=kwargs(tmp / "fake"), generator_as_dataset=True,
        )  # fmt: skip
        seen[:] = [[], []]  # real pass, then generated pass (after the real statistics are summarised)
        stats.clear()
        value = getattr(metric_main, name)(opts)[name]
        real_idx, fake_idx = (np.concatenate(s) for s in seen)
        out[name] = {"params": params[-1], "value": value, "real_idx": real_idx, "fake_idx": fake_idx,
                     "mu_real": stats[0][0], "sigma_real": stats[0][1], "mu_fake": stats[1][0],
                     "sigma_fake": stats[1][1]}  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--commit", required=True, help="the stylegan-v commit the archive was made from")
    args = ap.parse_args()
    vids = videos()
    with tempfile.TemporaryDirectory() as tmp:
        res = run_stylegan_v(Path(tmp), vids)
    arrays, meta = {}, {"commit": args.commit, "stub": "make_stylegan_v_long.stub_features", "metrics": {}}
    for name, r in res.items():
        for key in ("real_idx", "fake_idx", "mu_real", "sigma_real", "mu_fake", "sigma_fake"):
            arrays[f"{name}/{key}"] = r[key]
        meta["metrics"][name] = {"value": r["value"], "compute_fvd_kwargs": r["params"]}
    np.savez_compressed(OUT.with_suffix(".npz"), **arrays)
    OUT.with_suffix(".json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    print(json.dumps(meta, indent=1))


if __name__ == "__main__":
    main()
