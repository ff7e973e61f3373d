"""Regenerate ``c3d_chainer6.json``: tgan2's C3D classifier run by Chainer 6.0.0 on the random Chainer-layout weights.

The network is composed from Chainer's own links and functions following metrics.md §9 (ConvolutionND, the fixed
1x1x1 BGR x128 ``pre`` convolution, ``F.resize_images``, ``L.Bias`` with 128 - mean[:, :, 8:120, 8:120],
``max_pooling_nd`` with its default ``cover_all=True``, Linear, softmax), and the weights are read with
``chainer.serializers.load_npz``, so the file layout is checked by Chainer's loader too. Two steps, two environments:

    python tests/golden/make_c3d_golden.py inputs /tmp/c3d     # vgbench venv: weights + inputs (PyAV decode)
    /path/to/chainer6-venv/bin/python tests/golden/make_c3d_golden.py chainer /tmp/c3d
                                                                # chainer==6.0.0, numpy<1.24: writes the JSON
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[2] / "shared" / "data"
OUT_JSON = HERE / "c3d_chainer6.json"


def golden_inputs(shared_data: Path) -> dict[str, np.ndarray]:
    """The three clips, float32 (1, 16, H, W, 3) RGB as the classifier takes them (before clipping)."""
    import av

    with av.open(str(shared_data / "ucf101/UCF-101/Basketball/v_Basketball_g01_c01.avi")) as c:
        frames = [f.to_ndarray(format="rgb24") for _, f in zip(range(16), c.decode(video=0), strict=False)]
    ucf = (np.stack(frames)[None].astype(np.float32) - 128) / 128  # tgan2's (x - 128) / 128 on uint8
    noise64 = np.random.default_rng(1).uniform(-1, 1, (1, 16, 64, 64, 3)).astype(np.float32)
    wide128 = np.random.default_rng(2).uniform(-1.3, 1.3, (1, 16, 128, 128, 3)).astype(np.float32)  # clipped
    return {"ucf_240x320": ucf, "noise_64": noise64, "overrange_128": wide128}


def make_inputs(out: Path) -> None:
    sys.path.insert(0, str(HERE.parent))
    from c3d_random import random_c3d_arrays, write_chainer_npz

    out.mkdir(parents=True, exist_ok=True)
    write_chainer_npz(out / "weights.npz", random_c3d_arrays(0))
    np.savez(out / "inputs.npz", **golden_inputs(SHARED))


def run_chainer(out: Path) -> None:
    import chainer
    import chainer.functions as F
    import chainer.links as L

    class C3D(chainer.Chain):
        def __init__(self):
            super().__init__()
            with self.init_scope():
                for name, cin, cout in (
                    ("conv1a", 3, 64),
                    ("conv2a", 64, 128),
                    ("conv3a", 128, 256),
                    ("conv3b", 256, 256),
                    ("conv4a", 256, 512),
                    ("conv4b", 512, 512),
                    ("conv5a", 512, 512),
                    ("conv5b", 512, 512),
                ):
                    setattr(self, name, L.ConvolutionND(3, cin, cout, 3, 1, 1))
                self.fc6 = L.Linear(8192, 4096)
                self.fc7 = L.Linear(4096, 4096)
                self.fc8 = L.Linear(4096, 101)
            self.pre = L.ConvolutionND(3, 3, 3, 1, 1, 0, nobias=True)  # outside init_scope: not in the npz
            self.pre.W.data[:] = 0
            self.pre.W.data[[0, 1, 2], [2, 1, 0]] = 128
            self.mean = L.Bias(shape=(3, 16, 112, 112))
            self.mean.b.data[:] = 128 - np.load(SHARED / "c3d/mean2.npz")["mean"][:, :, 8:120, 8:120]

        def __call__(self, x):  # x: (N, 3, 16, H, W) float32 in [-1, 1]
            h = self.pre(x)
            n, c, t, hh, ww = h.shape
            h = F.resize_images(F.transpose(h, (0, 2, 1, 3, 4)).reshape(n * t, c, hh, ww), (112, 112))
            h = self.mean(F.transpose(h.reshape(n, t, c, 112, 112), (0, 2, 1, 3, 4)))
            pool = {"conv1a": (1, 2, 2), "conv2a": 2, "conv3b": 2, "conv4b": 2, "conv5b": 2}
            for name in ("conv1a", "conv2a", "conv3a", "conv3b", "conv4a", "conv4b", "conv5a", "conv5b"):
                h = F.relu(getattr(self, name)(h))
                if name in pool:
                    h = F.max_pooling_nd(h, ksize=pool[name])
            h = F.relu(self.fc6(h))
            h = F.relu(self.fc7(h))
            return self.fc8(h)

    model = C3D()
    chainer.serializers.load_npz(str(out / "weights.npz"), model)
    result = {"chainer": chainer.__version__, "numpy": np.__version__, "clips": {}}
    with (
        np.load(out / "inputs.npz") as z,
        chainer.using_config("train", False),
        chainer.using_config("enable_backprop", False),
    ):
        for key in sorted(z.files):
            x = np.clip(z[key], -1, 1).transpose(0, 4, 1, 2, 3).copy()  # make_samples clips; NCTHW
            logits = model(x)
            probs = F.softmax(logits).data.astype(np.float64)
            result["clips"][key] = {"logits": logits.data[0].tolist(), "probs": probs[0].tolist()}
    OUT_JSON.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {OUT_JSON}")


if __name__ == "__main__":
    step, out = sys.argv[1], Path(sys.argv[2])
    {"inputs": make_inputs, "chainer": run_chainer}[step](out)
