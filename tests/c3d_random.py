"""A deterministic random weight file in the exact layout of tgan2's Chainer C3D (``conv3d_deepnetA_ucf.npz``).

The real weights cannot be redistributed or fetched offline, so parity tests use these: same array names, shapes,
dtypes and npz container as Chainer's ``save_npz`` of ``C3DVersion1UCF101``. He-normal convolutions and a damped fc8
keep activations and logits in a range where the softmax is neither uniform nor one-hot.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

FC8_SCALE = 0.01  # logits of a few units on the golden inputs


def random_c3d_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    """Chainer-layout C3D arrays from ``numpy.random.default_rng(seed)`` (deterministic across platforms)."""
    from vgbench.models.c3d import expected_shapes

    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in sorted(expected_shapes().items()):
        if name.endswith("/b"):
            out[name] = (rng.standard_normal(shape, dtype=np.float32) * np.float32(0.01)).astype(np.float32)
            continue
        fan_in = int(np.prod(shape[1:]))
        std = np.sqrt(2.0 / fan_in) * (FC8_SCALE if name == "fc8/W" else 1.0)
        out[name] = (rng.standard_normal(shape, dtype=np.float32) * np.float32(std)).astype(np.float32)
    return out


def write_chainer_npz(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    """Write the arrays as Chainer's ``save_npz(..., compression=False)`` does: a plain ``numpy.savez``."""
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return path
