"""Parity with the reference pipelines: the golden values of metrics.md §12 and the TF backend."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from vgbench import cards
from vgbench.metrics.frechet import FeatureStats, frechet_distance_from_stats
from vgbench.metrics.fvd import build_extractor
from vgbench.models.i3d import build_i3d
from vgbench.tensors import to_network_scale

GOLDEN_RANDOM_FVD = 10.13808536529541  # TF-Hub, universome/fvd-comparison README (metrics.md §12a)
GOLDEN_RANDOM_FVD_EPS5 = 10.1664  # same inputs, BN eps 1e-5 (measured, metrics.md §12a)
GOLDEN_EXAMPLE_FVD = 133.91  # 16 zeros vs 16 x 255, 15 frames 64x64, official pipeline (metrics.md §12b)


@pytest.mark.slow
@pytest.mark.parity
def test_random_video_fvd_matches_tfhub_golden(i3d_tensors):
    """RandomState(1) vs RandomState(2), 128 x 16x224x224x3 in [0, 1], fed to I3D directly (no preprocessing)."""
    official, compat = build_i3d(i3d_tensors, bn_eps=1e-3), build_i3d(i3d_tensors, bn_eps=1e-5)
    stats = {}
    for seed in (1, 2):
        rs = np.random.RandomState(seed)
        s3, s5 = FeatureStats.empty(400), FeatureStats.empty(400)
        for _ in range(8):  # successive rand() calls continue the same stream as one rand(128, ...)
            x = torch.from_numpy(rs.rand(16, 16, 224, 224, 3).astype(np.float32)).permute(0, 4, 1, 2, 3)
            with torch.inference_mode():
                s3.update(official(x).double().numpy())
                s5.update(compat(x).double().numpy())
        stats[seed] = (s3, s5)
    fvd3 = float(np.float32(frechet_distance_from_stats(stats[1][0], stats[2][0], warn=False)))
    fvd5 = float(np.float32(frechet_distance_from_stats(stats[1][1], stats[2][1], warn=False)))
    assert abs(fvd3 - GOLDEN_RANDOM_FVD) < 1e-4
    assert abs(fvd5 - GOLDEN_RANDOM_FVD_EPS5) < 1e-3


@pytest.mark.slow
@pytest.mark.parity
def test_official_example_through_the_cli(tmp_path, i3d_tensors):
    zeros, whites = tmp_path / "zeros.npy", tmp_path / "whites.npy"
    np.save(zeros, np.zeros((16, 15, 64, 64, 3), np.uint8))
    np.save(whites, np.full((16, 15, 64, 64, 3), 255, np.uint8))
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "vgbench",
            "eval",
            "--samples",
            str(zeros),
            "--reference",
            str(whites),
            "--no-store",
            "--no-cache",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    record = json.loads(out.stdout)
    assert abs(record["value"] - GOLDEN_EXAMPLE_FVD) <= 0.01
    assert record["protocol"] == "official" and record["n_samples"] == 16 and record["n_reference"] == 16
    assert record["extractor"]["content_sha256"] == cards.model("i3d.kinetics400_tfhub").weights.content_sha256


@pytest.mark.slow
@pytest.mark.parity
@pytest.mark.tf
def test_tf_backend_equals_torch_backend(i3d_tensors, tf):
    """Same weights, TF kernels and TF's own resize vs the torch path, on non-square random uint8 inputs."""
    _, _, p = cards.resolve_protocol("fvd.official")
    rng = np.random.default_rng(0)
    x = to_network_scale(rng.integers(0, 256, (3, 10, 40, 56, 3), dtype=np.uint8), "0-255", "none")
    a = build_extractor("i3d.kinetics400_tfhub", p, "torch", tensors=i3d_tensors)(x)
    b = build_extractor("i3d.kinetics400_tfhub", p, "tf", tensors=i3d_tensors)(x)
    assert np.abs(a - b).max() < 1e-3
    assert np.abs(a).max() > 1  # the logits are not trivially small
