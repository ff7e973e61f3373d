"""Readers of every input form, and a clear error for every bad input."""

import zipfile

import numpy as np
import pytest

from vgbench.errors import InputError
from vgbench.video import SampleSet

from .conftest import random_videos, write_video


def _batches(path, **kw):
    s = SampleSet.open(path, kw.pop("value_range", None))
    return s, list(s.iter_batches(kw.pop("batch_size", 4), **kw))


def test_npy_npz_and_memmap(tmp_path):
    v = random_videos(10)
    np.save(tmp_path / "a.npy", v)
    np.savez(tmp_path / "b.npz", videos=v, labels=np.arange(10))
    np.savez_compressed(tmp_path / "c.npz", v)
    for name in ("a.npy", "b.npz", "c.npz"):
        s, batches = _batches(tmp_path / name)
        assert s.count == 10 and [len(b) for b in batches] == [4, 4, 2]
        np.testing.assert_array_equal(np.concatenate(batches), v)
    assert isinstance(SampleSet.open(tmp_path / "b.npz")._array, np.memmap)  # streamed, not loaded


def test_hdf5(tmp_path):
    h5py = pytest.importorskip("h5py", reason="h5py comes with the data/dev extras that make test installs")
    v = random_videos(5)
    with h5py.File(tmp_path / "v.h5", "w") as f:
        f["videos"] = v
    s, batches = _batches(tmp_path / "v.h5")
    np.testing.assert_array_equal(np.concatenate(batches), v)


def test_directory_of_videos_and_frames(tmp_path):
    vids = tmp_path / "vids"
    vids.mkdir()
    for i in range(3):
        write_video(vids / f"{i}.mp4", random_videos(1, t=10, h=32, w=48, seed=i)[0])
    s, batches = _batches(vids)
    assert s.kind == "videos" and np.concatenate(batches).shape == (3, 10, 32, 48, 3)
    frames = tmp_path / "frames"
    import av

    for i in range(2):
        d = frames / f"video{i}"
        d.mkdir(parents=True)
        for t, img in enumerate(random_videos(1, t=9, h=8, w=8, seed=i)[0]):
            with av.open(str(d / f"{t:03d}.png"), "w", format="image2") as c:
                st = c.add_stream("png")
                st.width, st.height, st.pix_fmt = 8, 8, "rgb24"
                for p in st.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                    c.mux(p)
    s, batches = _batches(frames)
    out = np.concatenate(batches)
    assert s.kind == "frames" and out.shape == (2, 9, 8, 8, 3)
    np.testing.assert_array_equal(out[1], random_videos(1, t=9, h=8, w=8, seed=1)[0])  # PNG is lossless


def test_gif_and_real_ucf_avi(tmp_path, shared_dir):
    write_video(tmp_path / "a.gif", random_videos(1, t=9, h=16, w=16)[0], codec="gif")
    s, b = _batches(tmp_path / "a.gif")
    assert b[0].shape == (1, 9, 16, 16, 3)
    s, b = _batches(shared_dir / "data/ucf101/UCF-101/Basketball/v_Basketball_g01_c01.avi", batch_size=1)
    assert b[0].shape[2:] == (240, 320, 3) and b[0].shape[1] > 16 and b[0].dtype == np.uint8


@pytest.mark.parametrize(
    "shape,match",
    [
        ((4, 9, 8, 8), r"rank 5 \(N, T, H, W, C\), got shape \(4, 9, 8, 8\)"),
        ((4, 9, 8, 8, 1), r"3 RGB channels.*grayscale\? repeat"),
        ((4, 3, 9, 8, 8), r"3 RGB channels.*channels first\?"),
    ],
)
def test_wrong_rank_or_channels(tmp_path, shape, match):
    np.save(tmp_path / "x.npy", np.zeros(shape, np.uint8))
    with pytest.raises(InputError, match=match):
        SampleSet.open(tmp_path / "x.npy")


def test_too_few_frames(tmp_path):
    np.save(tmp_path / "x.npy", random_videos(2, t=8))
    with pytest.raises(InputError, match="8 frames; at least 9 are needed"):
        _batches(tmp_path / "x.npy", min_frames=9)


def test_nan_and_inf(tmp_path):
    v = np.zeros((3, 9, 4, 4, 3), np.float32)
    v[2, 0, 0, 0, 0] = np.nan
    np.save(tmp_path / "x.npy", v)
    with pytest.raises(InputError, match=r"x.npy\[2\]: 1 NaN or inf values"):
        _batches(tmp_path / "x.npy", value_range="0-1")
    v[2, 0, 0, 0, 0] = np.inf
    np.save(tmp_path / "y.npy", v)
    with pytest.raises(InputError, match="NaN or inf"):
        SampleSet.open(tmp_path / "y.npy")  # detection reads the first videos


def test_values_outside_declared_range(tmp_path):
    v = np.full((2, 9, 4, 4, 3), 0.5, np.float32)
    v[1, 3] = 1.7
    np.save(tmp_path / "x.npy", v)
    with pytest.raises(InputError, match=r"values in \[0.5, 1.7\].*outside the declared range 0-1.*--range"):
        _batches(tmp_path / "x.npy", value_range="0-1")
    with pytest.raises(InputError, match="unknown value range '0-2'; allowed: auto, 0-255, 0-1, -1-1"):
        SampleSet.open(tmp_path / "x.npy", "0-2")
    np.save(tmp_path / "u.npy", random_videos(2))
    with pytest.raises(InputError, match="uint8 data is on the 0-255 scale, but --range 0-1"):
        SampleSet.open(tmp_path / "u.npy", "0-1")


def test_mixed_frame_counts_or_sizes(tmp_path):
    d = tmp_path / "vids"
    d.mkdir()
    write_video(d / "a.mp4", random_videos(1, t=10, h=16, w=16)[0])
    write_video(d / "b.mp4", random_videos(1, t=12, h=16, w=16)[0])
    with pytest.raises(InputError, match=r"b.mp4: shape \(T, H, W, C\) = \(12, 16, 16, 3\) differs from the first"):
        _batches(d)
    _, b = _batches(d, frames=10)  # a fixed clip length makes them uniform
    assert np.concatenate(b).shape == (2, 10, 16, 16, 3)
    with pytest.raises(InputError, match="a.mp4: 10 frames, but the protocol takes the first 11"):
        _batches(d, frames=11)


def test_empty_missing_and_unsupported(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no videos .* and no folders of frames .* empty or unreadable"):
        SampleSet.open(tmp_path / "empty")
    with pytest.raises(InputError, match="no such file or directory"):
        SampleSet.open(tmp_path / "missing")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(InputError, match=r"unsupported file type '.txt'"):
        SampleSet.open(tmp_path / "x.txt")
    np.save(tmp_path / "z.npy", np.zeros((0, 9, 4, 4, 3), np.uint8))
    with pytest.raises(InputError, match="the sample set is empty"):
        SampleSet.open(tmp_path / "z.npy")


def test_corrupt_video_file(tmp_path):
    d = tmp_path / "vids"
    d.mkdir()
    good = write_video(d / "a.mp4", random_videos(1, t=10)[0]).read_bytes()
    (d / "b.mp4").write_bytes(good[: len(good) // 3][::-1])
    with pytest.raises(InputError, match="b.mp4: cannot decode video"):
        _batches(d)


def test_npz_with_ambiguous_keys(tmp_path):
    np.savez(tmp_path / "x.npz", a=random_videos(2), b=random_videos(2))
    with pytest.raises(InputError, match=r"several arrays \['a', 'b'\].*'videos'"):
        SampleSet.open(tmp_path / "x.npz")
    assert zipfile.is_zipfile(tmp_path / "x.npz")
