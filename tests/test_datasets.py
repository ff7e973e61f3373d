"""Dataset preparation on the real samples in ../shared/data, resumability, bad inputs, loaders, references."""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import zipfile

import numpy as np
import pytest
import torch

from vgbench import cards, datasets
from vgbench.datasets import bair, moving_mnist, tgif, ucf101
from vgbench.datasets.common import resize_short_side_center_crop
from vgbench.datasets.loader import ClipDataset
from vgbench.errors import DownloadError, InputError, MissingDependencyError
from vgbench.video import decode_video

from .conftest import write_video
from .httpserver import FileServer

AVI = "data/ucf101/UCF-101/Basketball/v_Basketball_g01_c01.avi"


@pytest.fixture
def data_root(tmp_path, monkeypatch):
    root = tmp_path / "data"
    monkeypatch.setenv("VGBENCH_DATA", str(root))
    monkeypatch.delenv("VGBENCH_OFFLINE", raising=False)
    return root


def test_every_dataset_card_loads():
    assert cards.names("datasets") == ["bair", "moving_mnist", "quickstart", "tgif", "ucf101"]
    for name in cards.names("datasets"):
        card = cards.dataset(name)
        assert (card.sources or name == "quickstart") and card.splits and card.prepare == name  # quickstart: embedded
    assert set(datasets.source_layouts()) == set(cards.names("datasets"))  # every preparer says what --from takes
    assert cards.dataset("bair").splits == {"train": 43264, "test": 256}
    assert cards.dataset("moving_mnist").sources["sequences"].bytes == 819200096


# ----------------------------------------------------------------------------------------------------------
# BAIR


def test_bair_prepare_resume_and_values(shared_dir, data_root):
    src = shared_dir / "data/bair"
    s = datasets.prepare("bair", src=src)
    assert s.counts == {"test": 1, "train": 1} and s.written_shards == 2 and "INCOMPLETE" in s.text()
    store = datasets.open_store("bair")
    with open(next((src / "SYNTHETIC_tfds_fake_examples/softmotion30_44k/test").glob("*.tfrecords")), "rb") as f:
        (ex,) = list(bair.read_file(f, "test"))
    assert np.array_equal(store.frames("test", 0), ex["frames"])
    assert np.array_equal(store.extra("test", 0, "actions"), ex["actions"])
    assert store.videos("test")[0].name == "traj_0_to_255/0"
    store.verify()
    again = datasets.prepare("bair", src=src)
    assert again.written_shards == 0 and again.skipped_shards == 2
    (store.folder / "train/shard-00000.json").unlink()  # as if interrupted before the train shard finished
    assert datasets.prepare("bair", src=src).written_shards == 1
    info = datasets.info("bair")["store"]
    assert info["splits"]["test"] == {"videos": 1, "frames": 30, "frame_shape": [64, 64, 3], "length_min": 30,
                                      "length_max": 30}  # fmt: skip
    m = info["manifest"]
    # the sample holds 1 of the card's 256 test and 43,264 train videos: finished, but not complete
    assert m["params"]["camera"] == "image_aux1" and m["finished"] and not m["complete"]
    assert m["missing"] == {"train": 43263, "test": 255} and m["counts"] == {"train": 1, "test": 1}
    main = datasets.prepare("bair", src=src, camera="main")
    assert main.store.name == "image_main"
    with pytest.raises(InputError, match="unknown BAIR camera 'side'"):
        datasets.prepare("bair", src=src, camera="side")


def test_bair_from_tar_and_truncated_tar(shared_dir, data_root, tmp_path):
    tar_path = tmp_path / "bair.tar"
    with tarfile.open(tar_path, "w") as t:
        t.add(shared_dir / "data/bair/SYNTHETIC_tfds_fake_examples/softmotion30_44k", arcname="softmotion30_44k")
    datasets.prepare("bair", src=tar_path)
    a = datasets.open_store("bair").frames("train", 0)
    with open(next((shared_dir / "data/bair").rglob("train/*.tfrecords")), "rb") as f:
        assert np.array_equal(a, next(bair.read_file(f, "x"))["frames"])
    cut = tmp_path / "cut.tar"
    cut.write_bytes(tar_path.read_bytes()[:700_000])
    with pytest.raises(InputError, match="truncated|not a readable tar"):
        datasets.prepare("bair", src=cut, root=tmp_path / "other")


def test_corrupt_tfrecord_is_an_error_naming_file_and_offset(shared_dir, data_root, tmp_path):
    bad = tmp_path / "softmotion30_44k/test"
    bad.mkdir(parents=True)
    raw = bytearray(next((shared_dir / "data/bair").rglob("test/*.tfrecords")).read_bytes())
    raw[9000] ^= 0x55
    (bad / "traj_0_to_255.tfrecords").write_bytes(bytes(raw))
    with pytest.raises(InputError, match=r"traj_0_to_255.tfrecords: corrupt record at byte 0: payload CRC"):
        datasets.prepare("bair", src=tmp_path)


def test_bair_windows_train_random_and_eval_fixed(shared_dir, data_root):
    datasets.prepare("bair", src=shared_dir / "data/bair")
    store = datasets.open_store("bair")
    train = ClipDataset(store, "train", windows="random", seed=3)
    starts = set()
    for epoch in range(60):
        train.set_epoch(epoch)
        starts.add(train.locate(0)[1])
    assert starts == set(range(15))  # 0..14 inclusive for 30 frames and 16-frame clips
    item = train[0]
    assert item["video"].shape == (3, 16, 64, 64) and item["video"].dtype == torch.float32
    assert item["video"].min() >= -0.5 and item["video"].max() <= 0.5
    ev = datasets.open_split("bair:test", seed=5)
    assert ev[0]["video"].shape == (16, 64, 64, 3) and ev[0]["video"].dtype == torch.uint8
    assert ev.locate(0) == datasets.open_split("bair:test", seed=5).locate(0)  # deterministic per seed
    s = ev.locate(0)[1]
    assert np.array_equal(ev[0]["video"].numpy(), store.frames("test", 0)[s : s + 16])
    with_actions = ClipDataset(store, "train", extras=("actions",))
    assert with_actions[0]["actions"].shape == (16, 4)


@pytest.mark.slow  # real I3D on CPU: about a minute on the shared machine
def test_fvd_reference_from_a_prepared_split(shared_dir, data_root, tmp_path, i3d_tensors):
    from vgbench import api

    digits = moving_mnist.read_idx(shared_dir / "data/mnist/t10k-images-idx3-ubyte.gz")
    gen = moving_mnist.MovingMNIST(digits, length=20, seed=0)
    np.save(tmp_path / "seq.npy", np.stack([gen[i][..., 0] for i in range(20)]).transpose(1, 0, 2, 3))
    datasets.prepare("moving_mnist", src=tmp_path / "seq.npy")
    ref = datasets.open_split("moving_mnist:test")
    np.save(tmp_path / "same.npy", np.stack([ref[i]["video"].numpy() for i in range(len(ref))]))
    r = api.evaluate("fvd", tmp_path / "same.npy", "moving_mnist:test", tensors=i3d_tensors, device="cpu")
    # identical clips on both sides: FD 0 up to rounding (measured 1.1e-13)
    assert r.value == pytest.approx(0.0, abs=1e-6) and r.n_reference == 4 == r.n_samples
    assert r.reference["dataset"] == "moving_mnist:test" and r.reference["windows"] == "fixed"
    with pytest.raises(InputError, match="no split 'val2'"):
        api.evaluate("fvd", tmp_path / "same.npy", "moving_mnist:val2", tensors=i3d_tensors, device="cpu")
    with pytest.raises(InputError, match="no split 'tset'. Did you mean 'test'"):
        api.evaluate("fvd", tmp_path / "same.npy", "moving_mnist:tset", tensors=i3d_tensors, device="cpu")
    datasets.prepare("bair", src=shared_dir / "data/bair")
    with pytest.raises(InputError, match=r"1 video; fvd.official needs at least 2"):  # the sample holds one test video
        api.evaluate("fvd", tmp_path / "same.npy", "bair:test", tensors=i3d_tensors, device="cpu")


# ----------------------------------------------------------------------------------------------------------
# UCF-101


def test_ucf_split_lists(shared_dir):
    classes, folds = ucf101.read_split_lists(shared_dir / "data/ucf101/ucfTrainTestlist")
    assert len(classes) == 101 and classes[7] == "Basketball" and classes[36] == "HandstandPushups"
    counts = {k: (len(v["train"]), len(v["test"])) for k, v in folds.items()}
    assert counts == {"1": (9537, 3783), "2": (9586, 3734), "3": (9624, 3696)}
    for v in folds.values():
        assert len(set(v["train"]) | set(v["test"])) == 13320 and not set(v["train"]) & set(v["test"])
    assert "HandstandPushups/v_HandStandPushups_g01_c01.avi" in folds["1"]["test"]


@pytest.mark.slow  # 2 x 834 shards (every listed video but one is missing): ~15 s on the shared machine
def test_ucf_prepare_fold1_on_the_real_video(shared_dir, data_root):
    s = datasets.prepare("ucf101", src=shared_dir / "data/ucf101", fold="1", resolution=64)
    assert s.counts == {"test": 1} and s.failures == 13319  # every other listed video is missing, and reported
    assert "13319 videos listed in the split files are missing" in s.text()
    store = datasets.open_store("ucf101", "fold1_64")
    ref = store.videos("test")[0]
    assert (ref.name, ref.label, ref.length) == ("Basketball/v_Basketball_g01_c01.avi", 7, 141)
    assert store.frames("test", 0).shape == (141, 64, 86, 3)  # the whole width kept: 64 x ceil(320 * 64 / 240)
    frames = store.frames("test", 0, box=ref.window(store.crop_size))  # the centre window, as evaluation reads it
    expected = resize_short_side_center_crop(decode_video(shared_dir / AVI), 64)
    assert frames.shape == (141, 64, 64, 3) and np.array_equal(frames, expected)
    reasons = {f["reason"] for f in store.failures()}
    assert reasons == {"listed in the split file but missing from the source"}
    clips = ClipDataset(store, "test", windows="all", step=16, output="uint8_thwc")
    assert len(clips) == (141 - 16) // 16 + 1 and clips.locate(7) == (0, 112)
    assert len(ClipDataset(store, "test", windows="all", step=1)) == 126
    assert datasets.prepare("ucf101", src=shared_dir / "data/ucf101", fold="all", resolution=64).counts == {"all": 1}


def test_decoded_ucf_frame_values(shared_dir):
    x = decode_video(shared_dir / AVI)
    assert x.shape == (141, 240, 320, 3) and x.dtype == np.uint8
    y = resize_short_side_center_crop(x[:2], 128)  # 240x320 -> 128x171 (ceil) -> centre 128x128
    assert y.shape == (2, 128, 128, 3)

    def torch_resize(dtype):
        t = torch.from_numpy(x[:2]).permute(0, 3, 1, 2).to(dtype)
        r = torch.nn.functional.interpolate(t, size=(128, 171), mode="bilinear", align_corners=False)
        return r[:, :, :, 21:149].permute(0, 2, 3, 1).numpy()  # (2, 128, 128, 3)

    # The exact result is the float64 bilinear value rounded half to even: equal wherever float64 is clear of a tie
    # (its error is ~1e-13), and even on the ties.
    ref = torch_resize(torch.float64)
    frac = ref - np.floor(ref)
    clear = np.abs(frac - 0.5) > 1e-9
    assert np.array_equal(y[clear], np.rint(ref[clear])) and (y[~clear] % 2 == 0).all()
    assert (~clear).sum() == 1010  # the frames hold ties (measured: 1,010 of 98,304), so tie-breaking is tested
    # PyTorch's float32 resize + round differs by one level near ties only (measured: 20 of 98,304 values)
    off = np.abs(y.astype(int) - np.rint(torch_resize(torch.float32)))
    assert off.max() == 1 and (off > 0).sum() < 100


def test_exact_resize_known_answers():
    x = np.arange(2 * 4 * 6 * 3, dtype=np.uint8).reshape(2, 4, 6, 3)
    # 4x6 -> 2x3 (short side 2), crop 2x2 at column 0: each output is the mean of a 2x2 block (half-pixel centres),
    # by hand: (0 + 3 + 18 + 21) / 4 = 10.5 -> 10 (half to even), (6 + 9 + 24 + 27) / 4 = 16.5 -> 16, 46.5, 52.5
    assert resize_short_side_center_crop(x, 2)[0, :, :, 0].tolist() == [[10, 16], [46, 52]]
    const = np.full((3, 30, 50, 3), 77, np.uint8)
    assert (resize_short_side_center_crop(const, 12) == 77).all()  # weights sum to one exactly
    assert (resize_short_side_center_crop(const, 45) == 77).all()  # upsampling too
    same = resize_short_side_center_crop(x, 4)  # no resize: the centre crop only
    assert np.array_equal(same, x[:, :, 1:5])


@pytest.fixture
def ucf_copy(shared_dir, tmp_path):
    root = tmp_path / "ucf"
    shutil.copytree(shared_dir / "data/ucf101", root)
    os.chmod(root, 0o755)
    for p in root.rglob("*"):
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    return root


def test_ucf_label_from_folder_and_bad_videos(ucf_copy, data_root):
    hp = ucf_copy / "UCF-101/HandstandPushups"
    hp.mkdir()
    shutil.copy(ucf_copy / "UCF-101/Basketball/v_Basketball_g01_c01.avi", hp / "v_HandStandPushups_g01_c01.avi")
    (ucf_copy / "UCF-101/Basketball/v_Basketball_g01_c02.avi").write_bytes(b"\0not a video" * 100)
    s = datasets.prepare("ucf101", src=ucf_copy, resolution=32, workers=2)
    store = datasets.open_store("ucf101", "fold1_32")
    labels = {r.name: r.label for r in store.videos("test")}
    assert labels == {"Basketball/v_Basketball_g01_c01.avi": 7, "HandstandPushups/v_HandStandPushups_g01_c01.avi": 36}
    bad = [f for f in store.failures() if f["name"] == "Basketball/v_Basketball_g01_c02.avi"]
    assert len(bad) == 1 and bad[0]["reason"].startswith("cannot decode") and s.failures == 13320 - 2


def test_truncated_avi_is_a_failure_with_the_frame_count_reached(ucf_copy, data_root, tmp_path):
    avi = ucf_copy / "UCF-101/Basketball/v_Basketball_g01_c01.avi"
    # the first 100,000 of 287,972 bytes: FFmpeg decodes 49 of the 141 frames and stops without an error
    # (measured; the "stored as 49 frames")
    cut = ucf_copy / "UCF-101/Basketball/v_Basketball_g01_c02.avi"
    cut.write_bytes(avi.read_bytes()[:100_000])
    with pytest.raises(InputError, match=r"c02.avi: truncated or damaged: decoding stopped at frame 49 of the 141"):
        decode_video(cut)
    from vgbench.video import SampleSet

    (tmp_path / "samples").mkdir()
    shutil.copy(cut, tmp_path / "samples/cut.avi")
    with pytest.raises(InputError, match="decoding stopped at frame 49 of the 141"):  # eval reads the same way
        next(SampleSet.open(tmp_path / "samples").iter_batches(1))
    s = datasets.prepare("ucf101", src=ucf_copy, resolution=32)
    store = datasets.open_store("ucf101", "fold1_32")
    assert [r.name for r in store.videos("test")] == ["Basketball/v_Basketball_g01_c01.avi"]  # not stored short
    (bad,) = [f for f in store.failures() if f["name"] == "Basketball/v_Basketball_g01_c02.avi"]
    assert bad["kind"] == "truncated" and bad["frames_decoded"] == 49 and "of the 141" in bad["reason"]
    assert s.failure_kinds == {"missing": 13318, "truncated": 1}
    assert f"13,319 videos could not be used (missing 13,318, truncated 1): listed in {s.store}" in s.text()
    report = [json.loads(x) for x in (s.store / "failures.jsonl").read_text().splitlines()]
    assert len(report) == 13319 and bad in report


def test_different_source_refused_unless_forced(shared_dir, data_root, tmp_path):
    digits = moving_mnist.read_idx(shared_dir / "data/mnist/t10k-images-idx3-ubyte.gz")
    gen = moving_mnist.MovingMNIST(digits, length=12, seed=0)
    seqs = np.stack([gen[i][..., 0] for i in range(12)]).transpose(1, 0, 2, 3)  # (20, 12, 64, 64)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    np.save(tmp_path / "a/mnist_test_seq.npy", seqs)
    np.save(tmp_path / "b/mnist_test_seq.npy", seqs[:, ::-1])
    first = datasets.prepare("moving_mnist", src=tmp_path / "a")  # a folder holding the file is accepted
    assert first.counts == {"train": 8, "val": 1, "test": 3} and not first.complete
    assert datasets.prepare("moving_mnist", src=tmp_path / "a/mnist_test_seq.npy").skipped_shards == 3  # same file
    # 983,168 bytes = 20 * 12 * 64 * 64 values + a 128-byte .npy header
    with pytest.raises(InputError, match=r"was prepared from sequences .*/a/mnist_test_seq.npy, 983168 bytes; this run "
                                         r"reads sequences .*/b/mnist_test_seq.npy.*Pass --force"):  # fmt: skip
        datasets.prepare("moving_mnist", src=tmp_path / "b")
    store = datasets.open_store("moving_mnist")
    assert np.array_equal(store.frames("train", 0)[..., 0], seqs[:, 0])  # untouched by the refused run
    assert store.manifest["sources"]["sequences"]["path"].endswith("/a/mnist_test_seq.npy")
    forced = datasets.prepare("moving_mnist", src=tmp_path / "b", force=True)
    assert forced.written_shards == 3 and forced.skipped_shards == 0
    store = datasets.open_store("moving_mnist")
    assert np.array_equal(store.frames("train", 0)[..., 0], seqs[:, 11])  # all of it from b
    assert store.manifest["sources"]["sequences"]["path"].endswith("/b/mnist_test_seq.npy")
    assert not (store.folder / "failures.jsonl").exists() and "failures.jsonl" not in forced.text()


def test_ucf_missing_split_file_and_bad_archives(ucf_copy, data_root, tmp_path, monkeypatch):
    monkeypatch.setenv("VGBENCH_OFFLINE", "1")
    (ucf_copy / "ucfTrainTestlist/testlist01.txt").unlink()
    with pytest.raises(InputError, match="split file testlist01.txt is missing"):
        datasets.prepare("ucf101", src=ucf_copy)
    z = tmp_path / "UCF101_videos.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.write(ucf_copy / "UCF-101/Basketball/v_Basketball_g01_c01.avi", "UCF-101/Basketball/x.avi")
    z.write_bytes(z.read_bytes()[: z.stat().st_size // 2])
    with pytest.raises(InputError, match="not a complete zip archive"):
        datasets.prepare("ucf101", src=z)
    rar = tmp_path / "UCF101.rar"
    rar.write_bytes(b"Rar!\x1a\x07\x00" + np.random.default_rng(0).bytes(5000))  # a truncated / corrupt RAR
    with pytest.raises((InputError, MissingDependencyError), match="cannot unpack|no unrar tool|yielded no files"):
        datasets.prepare("ucf101", src=rar)
    assert not any(p.name.startswith(".") for p in (data_root / "ucf101/extracted").iterdir())  # no half extraction


# ----------------------------------------------------------------------------------------------------------
# TGIF


def test_tgif_lists_and_tsv(shared_dir):
    test = tgif.read_split(shared_dir / "data/tgif/splits/test.txt")
    val = tgif.read_split(shared_dir / "data/tgif/splits/val.txt")
    assert len(test) == len(set(test)) == 11360 and len(val) == 10708 and not set(test) & set(val)
    rows = tgif.read_tsv(shared_dir / "data/tgif/tgif-v1.0.readme_rows.tsv")
    assert len(rows) == 10 and rows[0][0] in val and all(r[0].endswith(".gif") for r in rows)
    assert tgif.gif_name(rows[0][0]) == "tumblr_mevmyaKtDf1rgvhr8o1_500.gif"


def _transparent_gif(path):
    """An 18-frame 225x225 GIF whose palette entry 0 (red) is the transparency index, over blue and green."""
    from PIL import Image

    frames = []
    for t in range(18):
        a = np.ones((225, 225), np.uint8)  # index 1: blue
        a[5:15, 5 + t : 20 + t] = 0  # index 0: transparent
        a[25:35, 10:30] = 2  # index 2: green
        im = Image.fromarray(a, mode="P")
        im.putpalette([255, 0, 0, 0, 0, 255, 0, 255, 0] + [0] * (253 * 3))
        frames.append(im)
    frames[0].save(path, save_all=True, append_images=frames[1:], transparency=0, disposal=2, duration=50, loop=0)
    return path


def test_eval_and_prepare_decode_identical_pixels(shared_dir, data_root, tmp_path):
    from vgbench.video import SampleSet

    src = tmp_path / "gifs"
    (src / "test").mkdir(parents=True)
    for n in ("1", "3", "4"):  # the shared TGIF GIFs, 225x225
        shutil.copy(shared_dir / f"data/tgif/gifs_from_tgif_qa/{n}.gif", src / "test" / f"{n}.gif")
    _transparent_gif(src / "test/5.gif")
    # prepared at their own size, the store holds the decoded pixels unresized
    datasets.prepare("tgif", src=src, resolution=225)
    store = datasets.open_store("tgif", "225")
    stored = {r.name: store.frames("test", i) for i, r in enumerate(store.videos("test"))}
    samples = SampleSet.open(src / "test")  # what `vgbench eval --samples` and `doctor` read
    read = {f"test/{p.name}": next(samples.raw_videos(i, i + 1))[0] for i, p in enumerate(samples.files)}
    assert sorted(stored) == sorted(read) == ["test/1.gif", "test/3.gif", "test/4.gif", "test/5.gif"]
    for name, video in read.items():
        assert video.shape[1:] == (225, 225, 3) and np.array_equal(video, stored[name]), name
    assert [len(read[f"test/{n}.gif"]) for n in "1345"] == [45, 42, 27, 18]  # frame counts in datasets.md §6
    # known answer: a transparent pixel is black in both paths (before, the sample reader gave white and the
    # dataset reader black); the palette colour behind it (red) never shows
    video = read["test/5.gif"]
    assert (video[0, 7, 10] == 0).all() and (video[0, 0, 0] == [0, 0, 255]).all()
    assert not (video == [255, 0, 0]).all(-1).any()


def test_gif_decoding_matches_pillow(shared_dir):
    from PIL import Image

    path = shared_dir / "data/tgif/gifs_from_tgif_qa/1.gif"
    ours = decode_video(path)
    with Image.open(path) as im:
        theirs = []
        for i in range(im.n_frames):
            im.seek(i)
            theirs.append(np.asarray(im.convert("RGB")))
    assert ours.shape == (45, 225, 225, 3) == np.stack(theirs).shape
    assert np.abs(ours.astype(int) - np.stack(theirs)).max() <= 1


def test_tgif_prepare_from_folder_with_a_single_frame_gif(shared_dir, data_root, tmp_path):
    src = tmp_path / "gifs"
    (src / "test").mkdir(parents=True)
    (src / "val").mkdir()
    for n in ("1", "3"):
        shutil.copy(shared_dir / f"data/tgif/gifs_from_tgif_qa/{n}.gif", src / "test" / f"{n}.gif")
    shutil.copy(shared_dir / "data/tgif/gifs_from_tgif_qa/4.gif", src / "val" / "4.gif")
    write_video(src / "test/still.gif", np.full((1, 32, 32, 3), 200, np.uint8), codec="gif")
    s = datasets.prepare("tgif", src=src)
    assert s.counts == {"test": 2, "train": 1} and s.failures == 1
    store = datasets.open_store("tgif")
    assert [r.length for r in store.videos("test")] == [45, 42] and store.frames("train", 0).shape == (27, 64, 64, 3)
    (fail,) = store.failures()
    assert fail["name"] == "test/still.gif" and "only 1 frames" in fail["reason"]


def test_tgif_downloads_record_status_and_retry_only_missing(shared_dir, tmp_path):
    gif = (shared_dir / "data/tgif/gifs_from_tgif_qa/4.gif").read_bytes()
    files = {"/a/tumblr_a_250.gif": gif, "/b/tumblr_b_250.gif": gif, "/c/tumblr_c_250.gif": b"<html>gone</html>"}
    with FileServer(files) as srv:
        urls = {"test": [f"{srv.url}/a/tumblr_a_250.gif", f"{srv.url}/c/tumblr_c_250.gif"],
                "val": [f"{srv.url}/b/tumblr_b_250.gif", f"{srv.url}/d/tumblr_d_250.gif"]}  # fmt: skip
        folder = tmp_path / "gifs"
        report = tgif.download_gifs(urls, folder, workers=4)
        assert report["test"] == {"ok": 1, "not_gif": 1} and report["val"] == {"ok": 1, "dead": 1}
        assert "test: 1 of 2 GIFs available (not_gif 1)" in tgif.availability_text(report)
        assert (folder / "tumblr_a_250.gif").read_bytes() == gif
        n = len(srv.log)
        tgif.download_gifs(urls, folder, workers=4)
        assert sorted(p for p, _ in srv.log[n:]) == ["/c/tumblr_c_250.gif", "/d/tumblr_d_250.gif"]
        (folder / "tumblr_a_250.gif").unlink()
        srv.files["/a/tumblr_a_250.gif"] = (shared_dir / "data/tgif/gifs_from_tgif_qa/1.gif").read_bytes()
        tgif.download_gifs(urls, folder)
        status = tgif.read_status(folder / "status.jsonl")
        assert status[urls["test"][0]]["status"] == "changed" and status[urls["val"][1]]["http"] == 404


# ----------------------------------------------------------------------------------------------------------
# Moving MNIST


def test_mnist_idx_files(shared_dir, tmp_path):
    imgs = moving_mnist.read_idx(shared_dir / "data/mnist/t10k-images-idx3-ubyte.gz")
    labels = moving_mnist.read_idx(shared_dir / "data/mnist/t10k-labels-idx1-ubyte.gz")
    train_labels = moving_mnist.read_idx(shared_dir / "data/mnist/train-labels-idx1-ubyte.gz")
    assert imgs.shape == (10000, 28, 28) and labels.shape == (10000,) and train_labels.shape == (60000,)
    # The files' sha256 equal TFDS's (data/mnist/PROVENANCE.md), so these are the published MNIST labels: the first
    # test digits 7, 2, 1, 0, 4 and training digits 5, 0, 4, 1, 9, and the test set's 980 / 1135 / 1032 zeros /
    # ones / twos, as listed on the MNIST page (LeCun, Cortes, Burges).
    assert labels[:5].tolist() == [7, 2, 1, 0, 4] and train_labels[:5].tolist() == [5, 0, 4, 1, 9]
    assert np.bincount(labels).tolist()[:3] == [980, 1135, 1032]
    cut = tmp_path / "cut.gz"
    cut.write_bytes((shared_dir / "data/mnist/t10k-images-idx3-ubyte.gz").read_bytes()[:5000])
    with pytest.raises(InputError, match="truncated"):
        moving_mnist.read_idx(cut)


def test_generator_is_deterministic_and_bounces(shared_dir):
    digits = moving_mnist.read_idx(shared_dir / "data/mnist/t10k-images-idx3-ubyte.gz")
    gen = moving_mnist.MovingMNIST(digits, length=100, seed=1)
    a, b = gen[3], moving_mnist.MovingMNIST(digits, length=100, seed=1)[3]
    assert a.shape == (20, 64, 64, 1) and a.dtype == np.uint8 and np.array_equal(a, b)
    assert not np.array_equal(a, gen[4]) and not np.array_equal(a, moving_mnist.MovingMNIST(digits, seed=2)[3])
    assert a.max() == 255 and (a > 0).mean() > 0.05
    traj = gen.trajectory(np.random.default_rng(0))
    assert traj.min() >= 0 and traj.max() <= 36
    steps = np.linalg.norm(np.diff(traj, axis=0), axis=1)
    # at most 5 px/frame (the card's speed range); rounding moves each end by at most sqrt(0.5); reflection shortens
    assert steps.max() <= 5 + 2 * np.sqrt(0.5) + 1e-9


def test_moving_mnist_prepare_by_index(shared_dir, data_root, tmp_path):
    digits = moving_mnist.read_idx(shared_dir / "data/mnist/t10k-images-idx3-ubyte.gz")
    gen = moving_mnist.MovingMNIST(digits, length=50, seed=0)
    seqs = np.stack([gen[i][..., 0] for i in range(50)]).transpose(1, 0, 2, 3)  # time-major like the real file
    np.save(tmp_path / "mnist_test_seq.npy", seqs)
    s = datasets.prepare("moving_mnist", src=tmp_path / "mnist_test_seq.npy")
    assert s.counts == {"test": 10, "train": 35, "val": 5} and "not the standard split" in s.text()
    store = datasets.open_store("moving_mnist")
    assert np.array_equal(store.frames("val", 2)[..., 0], seqs[:, 37])
    assert moving_mnist.split_ranges(10000) == {"train": (0, 7000), "val": (7000, 8000), "test": (8000, 10000)}
    rgb = datasets.open_split("moving_mnist:test")[0]["video"]
    assert rgb.shape == (16, 64, 64, 3)
    np.save(tmp_path / "bad.npy", np.zeros((20, 3, 32, 32), np.uint8))
    with pytest.raises(InputError, match=r"bad.npy: shape \(20, 3, 32, 32\), expected uint8 \(T=20, N, 64, 64\)"):
        datasets.prepare("moving_mnist", src=tmp_path / "bad.npy", root=tmp_path / "r2")


# ----------------------------------------------------------------------------------------------------------
# Loaders with DataLoader workers and DistributedSampler


def test_loader_workers_and_distributed_sampler(shared_dir, data_root, tmp_path):
    digits = moving_mnist.read_idx(shared_dir / "data/mnist/t10k-images-idx3-ubyte.gz")
    gen = moving_mnist.MovingMNIST(digits, length=30, seed=0)
    np.save(tmp_path / "seq.npy", np.stack([gen[i][..., 0] for i in range(30)]).transpose(1, 0, 2, 3))
    datasets.prepare("moving_mnist", src=tmp_path / "seq.npy")
    ds = ClipDataset(datasets.open_store("moving_mnist"), "train", seed=7)
    from torch.utils.data import DataLoader, DistributedSampler

    serial = torch.cat([b["video"] for b in DataLoader(ds, batch_size=4)])
    parallel = torch.cat([b["video"] for b in DataLoader(ds, batch_size=4, num_workers=2)])
    assert serial.shape == (21, 1, 16, 64, 64) and torch.equal(serial, parallel)
    parts = [list(DistributedSampler(ds, num_replicas=2, rank=r, shuffle=True, seed=1)) for r in (0, 1)]
    # 21 items on 2 replicas: 11 each, one item repeated as padding, every item covered
    assert len(parts[0]) == len(parts[1]) == 11 and set(parts[0]) | set(parts[1]) == set(range(21))


def test_cli_data_info_and_unknown_dataset(shared_dir, data_root):
    from click.testing import CliRunner

    from vgbench.cli import cli

    out = CliRunner().invoke(cli, ["data", "prepare", "bair", "--from", str(shared_dir / "data/bair")])
    assert out.exit_code == 0, out.output
    out = CliRunner().invoke(cli, ["data", "info", "bair", "--json"])
    info = json.loads(out.output)
    assert info["store"]["splits"]["train"]["videos"] == 1 and info["card_splits"]["train"] == 43264
    text = CliRunner().invoke(cli, ["data", "info", "bair"]).output
    assert "test: 1 videos of the card's 256, 30 frames of (64, 64, 3)" in text
    assert "INCOMPLETE against the card: 43,518 videos missing (test 255, train 43,263)" in text
    res = CliRunner().invoke(cli, ["data", "prepare", "biar"])
    assert res.exit_code != 0 and "Did you mean 'bair'" in str(res.exception)
    res = CliRunner().invoke(cli, ["data", "prepare", "bair", "--fold", "2", "--from", str(shared_dir / "data/bair")])
    assert "--fold does not apply to dataset bair" in str(res.exception)
    res = CliRunner().invoke(cli, ["data", "download", "bair", "--workers", "3"])
    assert "--workers does not apply to downloading bair" in str(res.exception)


def test_data_root_resolution(monkeypatch, tmp_path):
    from vgbench import cache

    monkeypatch.setenv("VGBENCH_DATA", str(tmp_path / "d"))
    assert cache.data_root() == tmp_path / "d" and cache.data_root(tmp_path / "x") == tmp_path / "x"
    monkeypatch.delenv("VGBENCH_DATA")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert cache.data_root() == tmp_path / "xdg/vgbench"


def test_manual_source_message(data_root, monkeypatch):
    monkeypatch.setenv("VGBENCH_OFFLINE", "1")
    with pytest.raises(DownloadError, match=r"VGBENCH_OFFLINE.*\n.*Put it at .*bair_robot_pushing_dataset_v0.tar"):
        datasets.prepare("bair")


def test_data_info_before_preparing_shows_the_card(data_root):
    from click.testing import CliRunner

    from vgbench.cli import cli

    res = CliRunner().invoke(cli, ["data", "info", "moving_mnist"])
    assert res.exit_code == 0, res.output
    # sources with sizes and checksums from the card (TFDS's, datasets.md §4), the splits, and what to run
    sha = "c2a3e8d3939c001ab77bf543f130157424efa486bb4d0974d2cebb773b13f8b3"
    assert f"sequences: mnist_test_seq.npy (819,200,096 bytes; sha256 {sha})" in res.output
    assert "test_images: t10k-images-idx3-ubyte.gz (1,648,877 bytes" in res.output and "[optional]" in res.output
    assert "card splits: train 7,000, val 1,000, test 2,000" in res.output
    assert "not prepared yet: run `vgbench data prepare moving_mnist`" in res.output
    info = json.loads(CliRunner().invoke(cli, ["data", "info", "ucf101", "--json"]).output)
    assert info["store"] is None and info["prepared"] == [] and info["card_splits"]["fold1/test"] == 3783
    assert info["sources"]["videos"]["sha256"] is None  # UCF101.rar: none published
    text = CliRunner().invoke(cli, ["data", "info", "ucf101", "--variant", "fold2_128"]).output
    assert "variant 'fold2_128' not prepared yet: run `vgbench data prepare ucf101`" in text


def test_data_help_has_examples_and_the_from_layouts():
    from click.testing import CliRunner

    from vgbench.cli import cli

    def help_of(*cmd):
        res = CliRunner().invoke(cli, [*cmd, "--help"], terminal_width=200)
        assert res.exit_code == 0, res.output
        return " ".join(res.output.split())

    for cmd in ("download", "info", "prepare"):
        assert f"Examples: vgbench data {cmd} " in help_of("data", cmd)
    text = help_of("data", "prepare")
    assert "What --from accepts" in text
    assert (
        "ucf101 UCF101.rar or UCF101_videos.zip, or a folder holding UCF-101/<Class>/*.avi (plus ucfTrainTestlist/"
        in text
    )
    bair = (
        "bair_robot_pushing_dataset_v0.tar (read in place), a folder holding softmotion30_44k/{train,test}/*.tfrecords"
    )
    assert f"bair {bair}" in text
    assert (
        "moving_mnist the file mnist_test_seq.npy (uint8 (20, N, 64, 64), time-major), or a folder holding it" in text
    )
    assert "tgif a folder holding {train,val,test}/**/*.gif" in text
    assert "--force" in text


def test_cli_interrupt_and_eof_exit_codes(monkeypatch, capsys):
    from vgbench import cli as cli_mod

    def stop(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_mod.cli, "main", stop)
    with pytest.raises(SystemExit) as e:
        cli_mod.main(["list", "datasets"])
    assert e.value.code == 130 and "interrupted" in capsys.readouterr().err

    def eof(*a, **k):  # Click turns an EOFError into Abort, which meant "exit 130" before: it is a read error
        import click

        raise click.exceptions.Abort() from EOFError("Compressed file ended before the end-of-stream marker")

    monkeypatch.setattr(cli_mod.cli, "main", eof)
    with pytest.raises(SystemExit) as e:
        cli_mod.main(["list", "datasets"])
    assert e.value.code == 1 and "error: unexpected end of input (Compressed file ended" in capsys.readouterr().err
