"""The embedded digits and the quickstart dataset made from them (no download)."""

from __future__ import annotations

import hashlib

import numpy as np

from vgbench import cards, datasets
from vgbench.datasets import quickstart


def test_embedded_subset_is_the_first_2000_mnist_test_digits(shared_dir):
    from vgbench.datasets.moving_mnist import read_idx

    images, labels = quickstart.embedded_digits()
    assert images.shape == (2000, 28, 28) and labels.shape == (2000,)
    # values from vgbench/datasets/embedded/PROVENANCE.md and shared/data/mnist/PROVENANCE.md
    assert int(images[0].sum()) == 18454 and int(images.sum()) == 48335026
    assert np.bincount(labels).tolist() == [175, 234, 219, 207, 217, 179, 178, 205, 192, 194]
    assert labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    full = read_idx(shared_dir / "data" / "mnist" / "t10k-images-idx3-ubyte.gz")
    assert np.array_equal(full[:2000], images)
    digest = hashlib.sha256(quickstart.IMAGES.read_bytes()).hexdigest()
    assert digest == "a41a4537e7aeea32f429bb10f3061144a1505328f02ba5fc308d84afa841df64"


def test_prepare_is_deterministic_and_splits_use_disjoint_digits(tmp_path):
    card = cards.dataset("quickstart")
    counts = {"train": 40, "test": 8}
    a = quickstart.prepare(card, root=tmp_path / "a", counts=counts)
    b = quickstart.prepare(card, root=tmp_path / "b", counts=counts)
    assert a.counts == counts and b.counts == counts
    for split in counts:
        fa = (a.store / split / "shard-00000.npy").read_bytes()
        assert fa == (b.store / split / "shard-00000.npy").read_bytes()
    ds = datasets.open_split("quickstart:test", root=tmp_path / "a", channels=1)
    v = ds[0]["video"].numpy()
    assert v.shape == (16, 64, 64, 1) and v.dtype == np.uint8 and v.max() > 200
    # the test split draws from digits 1600-1999 only, train from 0-1599
    assert quickstart.generator("test", 1).digits.shape[0] == 400
    assert quickstart.generator("train", 1).digits.shape[0] == 1600
    again = quickstart.prepare(card, root=tmp_path / "a", counts=counts)  # resumes: nothing rewritten
    assert again.written_shards == 0 and again.skipped_shards == 2
