"""UCF-101 training augmentation (VideoGPT-Paper: random crop + horizontal flip for training, centre crop for
evaluation) from a store with margins: evaluation clips bit-identical to the centre-cropped store, crops and flips a
pure function of (seed, epoch, index), their distributions, the store's checks, and the trainer's wiring."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil

import numpy as np
import pytest
import torch
from scipy import stats

from vgbench import cards, datasets
from vgbench.datasets import trainclips, ucf101
from vgbench.datasets.common import band_width, resize_short_side_band, resize_short_side_center_crop
from vgbench.datasets.loader import ClipDataset
from vgbench.datasets.store import Store, StoreWriter
from vgbench.datasets.videofiles import convert
from vgbench.errors import InputError
from vgbench.video import decode_video

from .conftest import write_video

AVI = "data/ucf101/UCF-101/Basketball/v_Basketball_g01_c01.avi"


# ----------------------------------------------------------------------------------------------------------
# The band resize


def test_band_known_answers():
    x = np.zeros((1, 240, 320, 3), np.uint8)  # UCF-101's frame size
    # 240x320 -> 64 x ceil(320 * 64 / 240) = 64 x 86; centre crop at column (86 - 64) // 2 = 11
    band, where = resize_short_side_band(x, 64, band_width(64, ucf101.ASPECT))
    assert band.shape == (1, 64, 86, 3) and where.picture == (0, 0, 64, 86) and where.center == (0, 11)
    # at 128: 128 x ceil(170.67) = 171, centre column 21 (test_datasets' torch crop [21:149] of the same resize)
    band, where = resize_short_side_band(x, 128, band_width(128, ucf101.ASPECT))
    assert band.shape == (1, 128, 171, 3) and where.picture == (0, 0, 128, 171) and where.center == (0, 21)
    # portrait 320x240 -> 86x64: the centre 64 rows, padded to the band's 86 columns by (86 - 64) // 2 = 11 left
    band, where = resize_short_side_band(np.full((1, 320, 240, 3), 9, np.uint8), 64, 86)
    assert where.picture == (0, 11, 64, 64) and where.center == (0, 11)
    assert (band[:, :, :11] == 0).all() and (band[:, :, 11:75] == 9).all() and (band[:, :, 75:] == 0).all()
    # 16:9 240x427 -> 64x114: the centre 86 of 114 columns, from column (114 - 86) // 2 = 14; the centre crop
    # (114 - 64) // 2 = 25 is column 25 - 14 = 11 of the band
    band, where = resize_short_side_band(np.zeros((1, 240, 427, 3), np.uint8), 64, 86)
    assert where.picture == (0, 0, 64, 86) and where.center == (0, 11)
    assert band_width(32, (4, 3)) == 43 and band_width(64, (4, 3)) == 86  # ceil(42.67), ceil(85.33)


@pytest.mark.parametrize("hw", [(240, 320), (30, 50), (50, 30), (40, 40), (24, 100), (33, 47), (64, 86), (16, 16)])
def test_band_centre_is_the_centre_crop_byte_for_byte(hw):
    x = np.random.default_rng(hw).integers(0, 256, (3, *hw, 3), dtype=np.uint8)
    for size in (8, 16):
        long_side = band_width(size, (4, 3))
        band, where = resize_short_side_band(x, size, long_side)
        top, left = where.center
        assert band.shape == (3, size, long_side, 3)
        assert np.array_equal(band[:, top : top + size, left : left + size], resize_short_side_center_crop(x, size))
        pt, pl, ph, pw = where.picture
        assert pt <= top and top + size <= pt + ph and pl <= left and left + size <= pl + pw


# ----------------------------------------------------------------------------------------------------------
# A small UCF-101 source: the real video's first 24 frames, a portrait and a 16:9 copy of them


CLASSES = ("ApplyEyeMakeup", "Basketball", "Biking", "Diving")  # real names of classInd.txt


@pytest.fixture(scope="module")
def ucf_source(shared_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("ucf_src")
    frames = decode_video(shared_dir / AVI)[:24]  # (24, 240, 320, 3)
    clips = {
        "landscape": write_video(folder / "landscape.avi", frames, fps=25),
        "portrait": write_video(folder / "portrait.avi", np.ascontiguousarray(frames[:, :, 40:200]), fps=25),
        "wide": write_video(folder / "wide.avi", np.ascontiguousarray(np.concatenate([frames, frames[:, :, :106]], 2)),
                            fps=25),  # 240x426: 16:9
    }  # fmt: skip
    lists = folder / "ucfTrainTestlist"
    lists.mkdir()
    shutil.copy(shared_dir / "data/ucf101/ucfTrainTestlist/classInd.txt", lists / "classInd.txt")
    names = {"train": [], "test": []}
    kinds = {"train": ["landscape"] * 6 + ["portrait", "wide"], "test": ["landscape", "portrait", "wide"]}
    for split, ks in kinds.items():
        for i, kind in enumerate(ks):
            cls = CLASSES[i % len(CLASSES)]
            rel = f"{cls}/v_{cls}_g{(1 if split == 'test' else 8):02d}_c{i:03d}.avi"
            (folder / "UCF-101" / cls).mkdir(parents=True, exist_ok=True)
            os.symlink(clips[kind], folder / "UCF-101" / rel)
            names[split].append(rel)
    for k in (1, 2, 3):
        (lists / f"trainlist0{k}.txt").write_text("".join(f"{r} 1\r\n" for r in names["train"]))
        (lists / f"testlist0{k}.txt").write_text("".join(f"{r}\r\n" for r in names["test"]))
    return folder


@pytest.fixture(scope="module")
def ucf_root(ucf_source, tmp_path_factory):
    """Data root with the UCF-101 store (margins) at 32 and 64, and, at 64, a centre-cropped store as vgbench
    prepared UCF-101 before margins (the same converter with ``long_side=None``, TGIF's path)."""
    root = tmp_path_factory.mktemp("data")
    for size in (32, 64):
        datasets.prepare("ucf101", root=root, src=ucf_source, resolution=size, workers=1)
    card = cards.dataset("ucf101")
    videos, lists = ucf101.locate(ucf_source, card, root)
    splits = ucf101.plan(videos, lists, "1")
    folder = root / "ucf101" / "prepared" / "centre_64"
    params = {"fold": "1", "resolution": 64, "resize": "short_side_bilinear_half_pixel_center_crop_exact"}
    writer = StoreWriter(folder, "ucf101", "centre_64", params, {"videos": videos}, (64, 64, 3))
    convert(writer, splits, 64, 1, ucf101.Summary("ucf101", folder))
    writer.finish(ucf101.expected_counts(card, "1"))
    return root


def test_the_store_keeps_the_band_and_each_video_s_windows(ucf_root, ucf_source):
    store = datasets.open_store("ucf101", "fold1_64", ucf_root)
    assert store.manifest["format"] == "vgbench-video-store/2" and store.crop_size == (64, 64)
    assert store.manifest["frame_shape"] == [64, 86, 3] and store.manifest["params"]["long_side"] == 86
    refs = {r.name.split("_c")[-1]: r for r in store.videos("test")}  # c000 landscape, c001 portrait, c002 wide
    assert (refs["000.avi"].picture, refs["000.avi"].center) == ((0, 0, 64, 86), (0, 11))
    assert (refs["001.avi"].picture, refs["001.avi"].center) == ((0, 11, 64, 64), (0, 11))  # 160x240 portrait
    assert (refs["002.avi"].picture, refs["002.avi"].center) == ((0, 0, 64, 86), (0, 11))  # 240x426 -> 64x114
    landscape = decode_video(ucf_source / "UCF-101" / refs["000.avi"].name)
    band, _ = resize_short_side_band(landscape, 64, 86)
    assert np.array_equal(store.frames("test", 0), band)


@pytest.mark.parametrize("windows", ["fixed", "all"])
def test_evaluation_clips_equal_the_centre_cropped_store_byte_for_byte(ucf_root, windows):
    # what FVD references read (datasets.open_split): the same clips from the store with margins as from the
    # centre-cropped store, for every item, the portrait and 16:9 videos included
    kw = {"windows": windows, "step": 4} if windows == "all" else {}
    band = datasets.open_split("ucf101/fold1_64:test", **kw, root=ucf_root)
    centre = datasets.open_split("ucf101/centre_64:test", **kw, root=ucf_root)
    assert len(band) == len(centre) == (3 if windows == "fixed" else 3 * ((24 - 16) // 4 + 1))
    for i in range(len(band)):
        a, b = band[i], centre[i]
        assert (a["index"], a["start"]) == (b["index"], b["start"])
        assert a["video"].dtype == torch.uint8 and torch.equal(a["video"], b["video"])
    # the training view's validation clips too (float CTHW)
    a = ClipDataset(datasets.open_store("ucf101", "fold1_64", ucf_root), "train", windows="fixed")
    b = ClipDataset(datasets.open_store("ucf101", "centre_64", ucf_root), "train", windows="fixed")
    assert all(torch.equal(a[i]["video"], b[i]["video"]) for i in range(len(a)))


def _train_view(ucf_root, size=32, **kw):
    store = datasets.open_store("ucf101", f"fold1_{size}", ucf_root)
    return ClipDataset(store, "train", output="uint8_thwc", crop="random", flip=True, **kw)


def test_random_crop_and_flip_are_a_function_of_seed_epoch_index(ucf_root):
    a, b = _train_view(ucf_root, seed=3), _train_view(ucf_root, seed=3)
    plain = ClipDataset(a.store, "train", output="uint8_thwc", seed=3)  # no augmentation
    draws = {}
    for epoch in (0, 1):
        a.set_epoch(epoch), b.set_epoch(epoch), plain.set_epoch(epoch)
        for i in (0, 5, 7, 3):  # any order
            x, y = a[i], b[i]
            assert torch.equal(x["video"], y["video"]) and (x["top"], x["left"], x["flipped"]) == (
                y["top"], y["left"], y["flipped"])  # fmt: skip
            assert (x["index"], x["start"]) == (plain[i]["index"], plain[i]["start"])  # windows unchanged
            draws[epoch, i] = (x["left"], x["flipped"])
            # the clip is the drawn window of the stored band, mirrored when flipped
            band = a.store.frames("train", x["index"], x["start"], x["start"] + 16)
            want = band[:, x["top"] : x["top"] + 32, x["left"] : x["left"] + 32]
            assert np.array_equal(x["video"].numpy(), want[:, :, ::-1] if x["flipped"] else want)
    assert any(draws[0, i] != draws[1, i] for i in (0, 5, 7, 3))  # redrawn per epoch
    other = _train_view(ucf_root, seed=4)
    assert [other.spatial(i, other.locate(i)[0]) for i in range(8)] != [a.spatial(i, a.locate(i)[0]) for i in range(8)]


def test_worker_count_does_not_change_the_clips(ucf_root):
    view = _train_view(ucf_root, seed=1)
    view.set_epoch(2)

    def load(workers):
        loader = torch.utils.data.DataLoader(view, batch_size=3, num_workers=workers, shuffle=False)
        return torch.cat([b["video"] for b in loader])

    assert torch.equal(load(0), load(2))


def test_crop_and_flip_distributions(ucf_root):
    # VGP: w_start = np.random.randint(0, w - R + 1), uniform over every column of the band; flip with p = 1/2
    view = _train_view(ucf_root, size=64)
    video = next(i for i in range(len(view)) if view.store.videos("train")[view.locate(i)[0]].picture[3] == 86)
    n = 23_000
    lefts, flips = np.zeros(n, np.int64), np.zeros(n, bool)
    for k in range(n):  # n distinct (epoch, index) keys; the window of one 86-column video
        view.set_epoch(k // len(view))
        (top, left, h, w), flips[k] = view.spatial(k % len(view), video)
        assert top == 0 and (h, w) == (64, 64)
        lefts[k] = left
    counts = np.bincount(lefts, minlength=23)
    assert len(counts) == 23 and counts.min() > 0  # every column 0..86-64 occurs, and no other
    # chi-square against uniform over 23 columns: reject only below p = 1e-6 (a false failure 1 run in 10^6)
    chi2 = ((counts - n / 23) ** 2 / (n / 23)).sum()
    assert chi2 < stats.chi2.ppf(1 - 1e-6, 22)
    # flips: within 5 standard deviations of n/2 (binomial, sd = sqrt(n)/2)
    assert abs(flips.sum() - n / 2) < 5 * math.sqrt(n) / 2
    # flip independent of the column: the flipped share is about 1/2 on both halves of the range
    for half in (lefts < 11, lefts >= 11):
        m = half.sum()
        assert abs(flips[half].sum() - m / 2) < 5 * math.sqrt(m) / 2


def test_portrait_video_has_no_random_columns_beyond_its_picture(ucf_root):
    view = _train_view(ucf_root, size=64)
    refs = view.store.videos("train")
    portrait = next(i for i, r in enumerate(refs) if r.picture == (0, 11, 64, 64))
    assert {view.spatial(i, portrait)[0] for i in range(50)} == {(0, 11, 64, 64)}  # only its centre fits


def test_random_crops_need_a_store_with_margins(ucf_root):
    store = datasets.open_store("ucf101", "centre_64", ucf_root)
    with pytest.raises(InputError, match=r"random crops need a store with margins .* \(64x64, centre-cropped"):
        ClipDataset(store, "train", crop="random")
    with pytest.raises(InputError, match="unknown crop 'corner'; allowed: center, random"):
        ClipDataset(store, "train", crop="corner")
    flipped = ClipDataset(store, "train", output="uint8_thwc", flip=True, windows="fixed")  # flip only: fine
    plain = ClipDataset(store, "train", output="uint8_thwc", windows="fixed")
    for i in range(len(plain)):
        x = flipped[i]
        want = plain[i]["video"].numpy()
        assert np.array_equal(x["video"].numpy(), want[:, :, ::-1] if x["flipped"] else want)


def test_damaged_windows_are_named(ucf_root, tmp_path):
    src = ucf_root / "ucf101" / "prepared" / "fold1_32"
    copy = tmp_path / "ucf101" / "prepared" / "fold1_32"
    shutil.copytree(src, copy)
    shard = next((copy / "test").glob("shard-*.json"))
    meta = json.loads(shard.read_text())
    meta["videos"][0]["center"] = [0, 30]  # a 32-wide clip from column 30 leaves the 43-column picture
    shard.write_text(json.dumps(meta))
    with pytest.raises(InputError, match=r"video '.*c000.avi': center \[0, 30\] puts the \(32, 32\) clip outside"):
        Store(copy).videos("test")
    manifest = json.loads((copy / "manifest.json").read_text())
    del manifest["crop_size"]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(InputError, match="format 'vgbench-video-store/2' with crop_size None"):
        Store(copy)


# ----------------------------------------------------------------------------------------------------------
# The trainer's data


def _spec(name: str, **changes) -> cards.TrainingSpec:
    return dataclasses.replace(cards.model(name).training, **changes)


def test_ucf_cards_train_with_random_crop_flip_and_tgif_with_flip():
    for name in ("vqvae.ucf101_64", "vqvae.ucf101_128", "gpt.ucf101_64", "gpt.ucf101_128"):
        assert cards.model(name).training.augment == "random_crop_flip", name
    for name in ("vqvae.tgif", "gpt.tgif"):  # VGP@458f224 flips TGIF; its crop mode is unknown
        assert cards.model(name).training.augment == "hflip", name
    for name in cards.names("models"):
        card = cards.model(name)
        if card.training is not None and card.training.dataset not in ("ucf101", "tgif"):
            assert card.training.augment == "none", name  # BAIR, Moving MNIST, quickstart: none in VGP either


def test_store_data_maps_card_splits_and_augments_training_only(ucf_root):
    spec = _spec("vqvae.ucf101_64", resolution=32)  # fold1/train, fold1/test, random_crop_flip
    data = trainclips.store_data(spec, channels=3, seed=5, root=ucf_root)
    assert data.describe["store"].endswith("fold1_32") and data.describe["augment"] == "random_crop_flip"
    assert (data.train.split, data.train.crop, data.train.flip) == ("train", "random", True)
    assert (data.val.split, data.val.crop, data.val.flip) == ("test", "center", False)
    item = data.train[0]
    assert item["video"].shape == (3, 16, 32, 32) and item["video"].dtype == torch.float32
    plain = trainclips.store_data(_spec("vqvae.ucf101_64", resolution=32, augment="none"), 3, 5, root=ucf_root)
    assert (plain.train.crop, plain.train.flip) == ("center", False)
    assert torch.equal(plain.val[0]["video"], data.val[0]["video"])  # validation clips do not depend on augment
    with pytest.raises(InputError, match=r"fold1_128.* is not prepared.*vgbench data prepare ucf101"):
        trainclips.store_data(_spec("vqvae.ucf101_128"), 3, 0, root=ucf_root)  # 128 was not prepared here
    with pytest.raises(InputError, match=r"clips of 32x32, but the card trains at 64x64 .*--resolution 64"):
        trainclips.store_data(_spec("vqvae.ucf101_64"), 3, 0, root=ucf_root, variant="fold1_32")
    with pytest.raises(InputError, match="UCF-101 split 'fold4/train' is not one of the card's splits"):
        trainclips.store_data(_spec("vqvae.ucf101_64", split="fold4/train"), 3, 0, root=ucf_root)
