"""Issue 10 on the evaluation side: no silently wrong number, no late failure, no hang.

Each test of a silently wrong case fails on the code before issue 10 (noted per test) and passes now. The FVD
engine runs with the stand-in extractor of test_fvd_pipeline (cheap, deterministic, input-sensitive), so the
numbers compared are real FVDs of real statistics, only of another feature map.
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from vgbench import api, cache, contenthash, doctor, leaderboard, validation
from vgbench.deps import DependencyImportError, require
from vgbench.errors import InputError, MissingDependencyError, ProtocolError
from vgbench.metrics import fvd, inception
from vgbench.video import SampleSet

from .conftest import REPO, random_videos
from .test_fvd_pipeline import mocked  # noqa: F401  (the fixture)

# ----------------------------------------------------------------------------------------------------------
# Stale statistics: the reference-statistics cache is keyed by content


def _rewrite_keeping_size_and_mtime(path: Path, new: np.ndarray, how: str) -> None:
    """Put other videos of the same shape into ``path`` and set its modification time back: in place (same
    inode), or as a new file moved over it (a copy tool's way)."""
    st = path.stat()
    data_offset = st.st_size - new.nbytes  # np.save: header, then the raw C-order data
    if how == "in place":
        with open(path, "r+b") as f:
            f.seek(data_offset)
            f.write(new.tobytes())
    else:
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            np.save(f, new)
        os.replace(tmp, path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)


# Before issue 10 the cache key was path + size + mtime: the second evaluation returned the first FVD.
@pytest.mark.parametrize("how", ["in place", "replaced"])
def test_replaced_content_with_same_size_and_mtime_gives_the_new_fvd(mocked, tmp_path, home, how):  # noqa: F811
    a, b = tmp_path / "a.npy", tmp_path / "b.npy"
    np.save(a, random_videos(20, seed=1))
    np.save(b, random_videos(20, seed=2))
    first = api.evaluate("fvd", a, b)
    _rewrite_keeping_size_and_mtime(b, random_videos(20, seed=3) // 2, how)  # darker videos: another FVD
    again = api.evaluate("fvd", a, b)
    fresh = api.evaluate("fvd", a, b, use_cache=False)
    assert again.value == fresh.value and abs(again.value - first.value) > 1.0
    assert again.reference["content_sha256"] == hashlib.sha256(b.read_bytes()).hexdigest()
    assert len(list((home / "stats").glob("*.npz"))) == 3  # one entry per content: a, b before, b after


def test_a_cache_entry_of_other_content_is_never_used(mocked, tmp_path, home):  # noqa: F811
    a, b = tmp_path / "a.npy", tmp_path / "b.npy"
    np.save(a, random_videos(20, seed=1))
    np.save(b, random_videos(20, seed=2))
    first = api.evaluate("fvd", a, b)
    entries = list((home / "stats").glob("*.npz"))
    assert len(entries) == 2  # the samples' and the reference's statistics
    for entry in entries:
        stats, meta = fvd.load_stats(entry)
        meta["source"]["content_sha256"] = "0" * 64  # an entry that claims other content under this key
        fvd.write_stats(entry, [fvd.FeatureStats(s.n, s.sum * 0, s.sum_outer) for s in stats], meta)
    assert api.evaluate("fvd", a, b).value == first.value  # recomputed, not read


def test_the_hash_accelerator_is_revalidated(home, tmp_path, monkeypatch):
    reads = []
    real = cache.sha256_file
    monkeypatch.setattr(cache, "sha256_file", lambda p: reads.append(p) or real(p))
    f = tmp_path / "x.bin"
    f.write_bytes(b"a" * 1000)
    want = hashlib.sha256(b"a" * 1000).hexdigest()
    # a file changed less than RACY_NS before its entry was recorded is hashed again (a second write in the
    # same timestamp tick would leave size, times and inode equal)
    assert contenthash.file_sha256(f) == contenthash.file_sha256(f) == want and len(reads) == 2
    monkeypatch.setattr(contenthash, "RACY_NS", 0)  # as if the file had been still for long
    assert contenthash.file_sha256(f) == want and len(reads) == 2  # served by the accelerator
    st = f.stat()
    f.write_bytes(b"b" * 1000)  # same size, same inode, mtime set back: only ctime tells
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert contenthash.file_sha256(f) == hashlib.sha256(b"b" * 1000).hexdigest() and len(reads) == 3


def test_the_accelerator_is_optional(tmp_path, monkeypatch):
    monkeypatch.setenv("VGBENCH_HOME", str(tmp_path / "file-not-folder"))
    (tmp_path / "file-not-folder").write_text("")  # the cache cannot be created: hashing still works
    f = tmp_path / "x.bin"
    f.write_bytes(b"abc")
    assert contenthash.file_sha256(f) == hashlib.sha256(b"abc").hexdigest()


def test_every_record_names_its_inputs_by_content(mocked, tmp_path, home):  # noqa: F811
    from .conftest import write_video

    a, b = tmp_path / "a.npy", tmp_path / "vids"
    np.save(a, random_videos(6, seed=1))
    b.mkdir()
    for i in range(3):
        write_video(b / f"{i}.mp4", random_videos(1, t=10, seed=i)[0])
    stats = tmp_path / "a_stats.npz"
    r = api.evaluate("fvd", b, a, save_stats=stats, allow_fewer=True)
    assert r.reference["content_sha256"] == hashlib.sha256(a.read_bytes()).hexdigest()
    per_file = [(f"{i}.mp4", hashlib.sha256((b / f"{i}.mp4").read_bytes()).hexdigest()) for i in range(3)]
    assert r.samples["content_sha256"] == contenthash.combine(per_file)  # name and content of every video
    assert r.samples["clip_shape"] == [10, 16, 16] and r.reference["clip_shape"] == [9, 16, 16]
    via_stats = api.evaluate("fvd", a, stats)  # a stats file: its own hash and the hash of what it summarises
    assert via_stats.reference["stats_file_sha256"] == hashlib.sha256(stats.read_bytes()).hexdigest()
    assert via_stats.reference["content_sha256"] == r.samples["content_sha256"]


def test_is_records_name_their_samples_by_content(tmp_path, monkeypatch):
    path = tmp_path / "s.npy"
    np.save(path, random_videos(4, t=16, seed=2))
    monkeypatch.setattr(inception.C3DExtractor, "from_card", classmethod(lambda cls, *a, **k: _FakeC3D()))
    r = api.evaluate("is", path, allow_fewer=True, device="cpu")
    assert r.samples["content_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert r.samples["clip_shape"] == [16, 16, 16]


class _FakeC3D:
    """Class probabilities from the mean colour: a stand-in for tgan2's C3D."""

    device = "cpu"

    class model:  # noqa: N801  (the attribute evaluate_is reads)
        provenance = {"weights_sha256": "fake"}

    def __call__(self, x: np.ndarray) -> np.ndarray:
        logits = np.tile(x.mean(axis=(1, 2, 3)), (1, 34))[:, :101]  # (B, 101)
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)


# ----------------------------------------------------------------------------------------------------------
# Mismatched sets: clip shapes recorded; a difference warned and noted, or refused where the protocol fixes it


# Before issue 10: no warning, no note, no clip shape in the record.
def test_sets_of_other_frame_counts_or_sizes_are_noted(mocked, tmp_path, caplog):  # noqa: F811
    s, r16, r_big = tmp_path / "s.npy", tmp_path / "r16.npy", tmp_path / "rbig.npy"
    np.save(s, random_videos(20, t=24, seed=1))
    np.save(r16, random_videos(20, t=16, seed=2))
    np.save(r_big, random_videos(20, t=24, h=32, w=32, seed=2))
    with caplog.at_level(logging.WARNING):
        res = api.evaluate("fvd", s, r16)
    assert res.samples["clip_shape"] == [24, 16, 16] and res.reference["clip_shape"] == [16, 16, 16]
    note = "samples are 24 x 16 x 16 (T x H x W), reference 16 x 16 x 16: the sets differ in frame count"
    assert any(n.startswith(note) for n in res.notes) and note in caplog.text
    res = api.evaluate("fvd", s, r_big)
    assert any("the sets differ in frame size" in n for n in res.notes)
    assert not any("frame count" in n for n in res.notes)
    # a protocol with a fixed clip length reads the first 16 frames of both: the clips match
    res = api.evaluate("fvd.stylegan_v_2048_16f", s, r16, allow_fewer=True)
    assert res.samples["clip_shape"] == res.reference["clip_shape"] == [16, 16, 16]
    assert not any("differ" in n for n in res.notes)


def test_a_protocol_that_fixes_the_size_refuses_others_before_any_network(mocked, tmp_path):  # noqa: F811
    s, r = tmp_path / "s.npy", tmp_path / "r.npy"
    np.save(s, random_videos(4, seed=1))  # 16 x 16
    np.save(r, random_videos(4, h=32, w=32, seed=2))
    fixed = {"resize": "none", "size": "16"}
    with pytest.raises(InputError, match=r"r.npy\[0\]: frames of 32x32; protocol fvd.official does not resize"):
        api.evaluate("fvd", s, r, overrides=fixed)
    assert mocked == []  # refused before the extractor was built
    with pytest.raises(InputError, match=r"s.npy\[0\]: 9 frames, but the protocol takes the first 12"):
        api.evaluate("fvd", s, r, overrides={"frames": "12"})
    assert mocked == []


# ----------------------------------------------------------------------------------------------------------
# Ranges: a declared range the values almost surely contradict


# Before issue 10: [0, 1] data declared -1-1 gave a plausible FVD with nothing in the record.
def test_unit_data_declared_minus_one_one_is_warned_and_noted(mocked, tmp_path, caplog):  # noqa: F811
    unit, ref = tmp_path / "unit.npy", tmp_path / "ref.npy"
    np.save(unit, random_videos(20, seed=1).astype(np.float32) / 255.0)
    np.save(ref, random_videos(20, seed=2))
    with caplog.at_level(logging.WARNING):
        r = api.evaluate("fvd", unit, ref, samples_range="-1-1")
    msg = "no value below 0 in the whole set ([0, 1]), but its range is declared as -1-1: probably [0, 1] data"
    assert any(msg in n for n in r.notes) and msg in caplog.text
    r = api.evaluate("fvd", unit, ref, samples_range="0-255")
    assert any("but its range is declared as 0-255: probably [0, 1] data" in n for n in r.notes)
    r = api.evaluate("fvd", unit, ref, samples_range="0-1")  # declared right: no note
    assert not any("probably" in n for n in r.notes)


def test_a_cached_reference_keeps_its_warnings_and_clip_shape(mocked, tmp_path, home):  # noqa: F811
    """The second evaluation reads the reference's statistics from the cache and reads no video of it: its
    warnings and clip shape come from the cache entry, so the record says the same as the first time."""
    s, unit = tmp_path / "s.npy", tmp_path / "unit.npy"
    np.save(s, random_videos(20, t=24, seed=1))
    np.save(unit, random_videos(20, t=16, seed=2).astype(np.float32) / 255.0)
    first = api.evaluate("fvd", s, unit, reference_range="-1-1")
    second = api.evaluate("fvd", s, unit, reference_range="-1-1")
    assert len(list((home / "stats").glob("*.npz"))) == 2  # the second run was served by the cache
    assert second.value == first.value and second.reference["clip_shape"] == [16, 16, 16]
    for r in (first, second):
        assert any("no value below 0 in the whole set" in n for n in r.notes)
        assert any("the sets differ in frame count" in n for n in r.notes)
    stats = tmp_path / "unit_stats.npz"  # the same for statistics saved with --save-stats and used as --reference
    api.evaluate("fvd", unit, s, samples_range="-1-1", save_stats=stats)
    via = api.evaluate("fvd", s, stats)
    assert any("no value below 0 in the whole set" in n for n in via.notes)
    assert any("the sets differ in frame count" in n for n in via.notes)


def test_uint8_videos_of_zeros_and_ones_are_noted_after_decoding(mocked, tmp_path):  # noqa: F811
    import av

    frames = tmp_path / "frames"  # PNG frames (lossless): values 0 and 1 survive, as after x.astype(uint8)
    for i, v in enumerate(random_videos(3, seed=4) // 128):
        (frames / f"v{i}").mkdir(parents=True)
        for t, img in enumerate(v):
            with av.open(str(frames / f"v{i}" / f"{t:02d}.png"), "w", format="image2") as c:
                st = c.add_stream("png")
                st.width, st.height, st.pix_fmt = 16, 16, "rgb24"
                for p in st.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                    c.mux(p)
    ref = tmp_path / "ref.npy"
    np.save(ref, random_videos(3, seed=2))
    r = api.evaluate("fvd", frames, ref)
    assert any("uint8 data with maximum 1 in the whole set: probably [0, 1] floats cast to uint8" in n for n in r.notes)


# ----------------------------------------------------------------------------------------------------------
# doctor applies exactly eval's checks


def _nan_last(tmp_path):
    v = random_videos(40, seed=1).astype(np.float32) / 255.0
    v[39, 2, 3, 4, 0] = np.nan
    np.save(tmp_path / "x.npy", v)
    return tmp_path / "x.npy", {"samples_range": "0-1"}, {"value_range": "0-1"}, "fvd"


def _out_of_range_last(tmp_path):
    v = random_videos(40, seed=1).astype(np.float32) / 255.0
    v[39, 8] = 1.5
    np.save(tmp_path / "x.npy", v)
    return tmp_path / "x.npy", {"samples_range": "0-1"}, {"value_range": "0-1"}, "fvd"


def _short(tmp_path):
    np.save(tmp_path / "x.npy", random_videos(5, t=8))
    return tmp_path / "x.npy", {}, {}, "fvd"


def _single(tmp_path):
    np.save(tmp_path / "x.npy", random_videos(1))
    return tmp_path / "x.npy", {}, {}, "fvd"


def _mixed_folder(tmp_path):
    from .conftest import write_video

    d = tmp_path / "vids"
    d.mkdir()
    write_video(d / "a.mp4", random_videos(1, t=10)[0])
    write_video(d / "b.mp4", random_videos(1, t=10, h=32, w=32)[0])
    return d, {}, {}, "fvd"


def _short_for_the_protocol(tmp_path):
    np.save(tmp_path / "x.npy", random_videos(3, t=12))
    return tmp_path / "x.npy", {"allow_fewer": True}, {"allow_fewer": True}, "fvd.stylegan_v_2048_16f"


def _is_too_short(tmp_path):
    np.save(tmp_path / "x.npy", random_videos(3, t=12))
    return tmp_path / "x.npy", {"allow_fewer": True}, {"allow_fewer": True}, "is"


def _too_few_for_the_protocol(tmp_path):
    np.save(tmp_path / "x.npy", random_videos(30, t=9, h=4, w=4))
    return tmp_path / "x.npy", {}, {}, "fvd.videogpt_paper"


# Before issue 10 doctor passed every one of these sets (a warning at most, exit 0); eval refused them.
@pytest.mark.parametrize(
    "make",
    [
        _nan_last,
        _out_of_range_last,
        _short,
        _single,
        _mixed_folder,
        _short_for_the_protocol,
        _is_too_short,
        _too_few_for_the_protocol,
    ],
)
def test_doctor_refuses_what_eval_refuses_with_the_same_message(mocked, tmp_path, monkeypatch, make):  # noqa: F811
    monkeypatch.setattr(inception.C3DExtractor, "from_card", classmethod(lambda cls, *a, **k: _FakeC3D()))
    path, eval_kw, doctor_kw, metric = make(tmp_path)
    reference = None if metric == "is" else path
    with pytest.raises((InputError, ProtocolError)) as exc:
        api.evaluate(metric, path, reference, device="cpu", **eval_kw)
    assert mocked == []  # found before any extractor was built
    report = doctor.inspect(str(path), metric=metric, **doctor_kw)
    assert not report.ok
    said = str(exc.value).split("; first: ")[-1].split(" (`vgbench doctor")[0]
    assert any(said in e for e in report.errors), (said, report.errors)


def test_doctor_accepts_what_eval_accepts_and_checks_the_pair(mocked, tmp_path):  # noqa: F811
    s, r = tmp_path / "s.npy", tmp_path / "r.npy"
    np.save(s, random_videos(20, t=24, seed=1))
    np.save(r, random_videos(20, t=16, seed=2))
    result = api.evaluate("fvd", s, r)
    report = doctor.inspect(str(s), reference=str(r))
    assert report.ok and report.reference["frames"] == {16: 20}
    pair = [w for w in report.warnings if "differ in frame count" in w]
    assert len(pair) == 1 and pair[0] in result.notes  # the same warning, word for word
    assert report.content_sha256 == result.samples["content_sha256"]


def test_doctor_cli_exits_1_when_eval_would_refuse(tmp_path, capsys):
    from vgbench.cli import main

    v = random_videos(3).astype(np.float32) / 255.0
    v[2, 0, 0, 0, 0] = np.inf
    np.save(tmp_path / "x.npy", v)
    with pytest.raises(SystemExit) as exc:
        main(["doctor", str(tmp_path / "x.npy"), "--range", "0-1"])
    out = capsys.readouterr().out
    assert exc.value.code == 1 and "error: " in out and "x.npy[2]: 1 NaN or inf values" in out
    assert out.rstrip().endswith("eval under fvd.official would refuse this: fix the errors above")


# ----------------------------------------------------------------------------------------------------------
# Cheap before expensive


def test_fvd_checks_everything_cheap_before_building_the_network(mocked, tmp_path, monkeypatch):  # noqa: F811
    extracted = []
    monkeypatch.setattr(fvd, "extract_stats", lambda *a, **k: extracted.append(a) or [])
    good = tmp_path / "good.npy"
    np.save(good, random_videos(4))
    with pytest.raises(InputError, match="missing.npy: no such file or directory"):
        api.evaluate("fvd", good, tmp_path / "missing.npy")
    # N = 1 (before issue 10: found by the covariance, after extracting both sets)
    np.save(tmp_path / "one.npy", random_videos(1))
    with pytest.raises(InputError, match="one.npy: 1 video; fvd.official needs at least 2"):
        api.evaluate("fvd", tmp_path / "one.npy", good)
    # a value out of range in the last video (before issue 10: found after extracting the 39 before it)
    v = random_videos(40).astype(np.float32) / 255.0
    v[-1, -1, -1, -1, -1] = 3.0
    np.save(tmp_path / "late.npy", v)
    with pytest.raises(InputError, match=r"values in \[0, 3\] at videos 32..39 lie outside the declared range 0-1"):
        api.evaluate("fvd", tmp_path / "late.npy", good, samples_range="0-1")
    # a stats file of other feature settings
    fvd.write_stats(tmp_path / "st.npz", [fvd.FeatureStats.empty(400)], {"feature_key": {"resize": "other"}})
    with pytest.raises(ProtocolError, match="other feature settings"):
        api.evaluate("fvd", good, tmp_path / "st.npz")
    if not __import__("torch").cuda.is_available():
        with pytest.raises(InputError, match="--device cuda: CUDA is not available"):
            api.evaluate("fvd", good, good, device="cuda")
    assert mocked == [] and extracted == []


def test_is_checks_everything_cheap_before_building_the_network(tmp_path, monkeypatch):
    built = []
    monkeypatch.setattr(inception.C3DExtractor, "from_card", classmethod(lambda cls, *a, **k: built.append(a)))
    with pytest.raises(InputError, match="missing.npy: no such file"):
        api.evaluate("is", tmp_path / "missing.npy")
    v = random_videos(12, t=16).astype(np.float32) / 255.0
    v[-1, 0, 0, 0, 0] = np.nan
    np.save(tmp_path / "nan.npy", v)
    with pytest.raises(InputError, match=r"nan.npy\[11\]: 1 NaN or inf values"):
        api.evaluate("is", tmp_path / "nan.npy", allow_fewer=True, samples_range="0-1")
    if not __import__("torch").cuda.is_available():
        np.save(tmp_path / "ok.npy", random_videos(3, t=16))
        with pytest.raises(InputError, match="CUDA is not available"):
            api.evaluate("is", tmp_path / "ok.npy", allow_fewer=True, device="cuda")
    assert built == []


def test_fortran_order_arrays_are_read_in_their_order(tmp_path):
    """A Fortran-order .npy was read as C order (scrambled pixels, a wrong FVD) before issue 10."""
    v = random_videos(3, seed=5)
    np.save(tmp_path / "f.npy", np.asfortranarray(v))
    got = np.concatenate(list(SampleSet.open(tmp_path / "f.npy").iter_batches(2)))
    np.testing.assert_array_equal(got, v)


# ----------------------------------------------------------------------------------------------------------
# Ctrl-C during eval

STALLED_EVAL = textwrap.dedent(
    """
    import sys, threading, time
    from pathlib import Path
    import numpy as np
    from vgbench.metrics import fvd
    from vgbench.video import SampleSet

    marker = Path(sys.argv[1])

    def build(*args, **kwargs):
        def extract(x):
            marker.write_text("the network ran on the first batch")
            return np.tanh(x.reshape(len(x), -1)[:, :400] / 255.0)
        return extract

    fvd.build_extractor = build
    read = SampleSet.raw_videos

    def stalled(self, start, stop):
        for i, batch in enumerate(read(self, start, stop)):
            if i == 1 and threading.current_thread().name == "vgbench-prefetch":
                time.sleep(120)  # a read or decode that takes long: the prefetch thread is inside it
            yield batch

    SampleSet.raw_videos = stalled
    from vgbench.cli import main
    main(sys.argv[2:])
    """
)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_eval_exits_130_promptly_and_writes_nothing(tmp_path, sig):
    """Before issue 10 the consumer waited up to 10 s for a prefetch thread stuck in a long read."""
    script, marker = tmp_path / "stalled_eval.py", tmp_path / "marker"
    script.write_text(STALLED_EVAL)
    videos = tmp_path / "v.npy"
    np.save(videos, random_videos(64, seed=1))
    env = {**os.environ, "PYTHONPATH": str(REPO), "VGBENCH_HOME": str(tmp_path / "home")}
    env.pop("VGBENCH_RESULTS", None)
    argv = ["eval", "--samples", str(videos), "--reference", str(videos), "--save-stats", str(tmp_path / "s.npz")]
    proc = subprocess.Popen(
        [sys.executable, str(script), str(marker), *argv], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        deadline = time.time() + 60
        while not marker.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert marker.exists(), proc.stderr.read().decode() if proc.poll() is not None else "no batch in 60 s"
        time.sleep(0.3)  # the consumer now waits for the stalled producer
        sent = time.time()
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
        took = time.time() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err.decode()
    assert took < 5, f"exit took {took:.1f} s"
    assert "interrupted" in err.decode() and "Traceback" not in err.decode()
    assert not (tmp_path / "s.npz").exists() and not (tmp_path / "home/results").exists()
    assert not list((tmp_path / "home").rglob("*.npz"))  # no statistics cached from a partial pass
    assert not list(tmp_path.rglob("*.part"))


# ----------------------------------------------------------------------------------------------------------
# Optional dependencies: the real cause


def test_an_installed_module_that_fails_to_import_is_not_called_missing(tmp_path, monkeypatch):
    (tmp_path / "vg_broken_pkg").mkdir()
    (tmp_path / "vg_broken_pkg/__init__.py").write_text("import pkg_resources_not_here_xyz\n")
    (tmp_path / "vg_clashing_pkg.py").write_text("raise AttributeError('_ARRAY_API not found')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(DependencyImportError) as exc:
        require("vg_broken_pkg", "tf", "the tfhub backend")
    msg = str(exc.value)
    assert "'vg_broken_pkg', which is installed (at " in msg and "No module named 'pkg_resources_not_here_xyz'" in msg
    assert "pip install pkg_resources_not_here_xyz" in msg and "vgbench[tf]" not in msg
    with pytest.raises(DependencyImportError, match="fails to import: AttributeError: _ARRAY_API not found"):
        require("vg_clashing_pkg", "tf", "the tf backend")
    with pytest.raises(MissingDependencyError, match=r"pip install 'vgbench\[tf\]'"):
        require("vg_not_installed_at_all", "tf", "the tfhub backend")


def test_tfhub_names_the_real_import_error(monkeypatch):
    """tensorflow_hub 0.16 without setuptools, as measured in issue 10: the import of pkg_resources fails."""
    import importlib

    from vgbench.metrics import i3d_tf
    from vgbench.metrics.protocols import FVDProtocol

    real = importlib.import_module

    def fake_import(name, *args, **kwargs):
        if name == "tensorflow_hub":
            raise ModuleNotFoundError("No module named 'pkg_resources'", name="pkg_resources")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(i3d_tf, "_tf", lambda: None)  # TensorFlow itself is not what fails here
    monkeypatch.setattr(importlib, "import_module", fake_import)
    p = FVDProtocol(description="", resize="tf_legacy", scale="minus_one_one", quantize="none")
    with pytest.raises(DependencyImportError, match=r"No module named 'pkg_resources'.*pip install setuptools"):
        i3d_tf.TFHubExtractor(p)


# ----------------------------------------------------------------------------------------------------------
# Tables: every marked value's explanation visible in every format


RECORDS = [
    {"metric": "fvd", "protocol": "official", "value": 16.7, "protocol_hash": "x", "run": "r", "dataset": "bair"},
    {"metric": "is", "protocol": "styleganv", "value": 16.7, "protocol_hash": "x", "run": "r", "dataset": "ucf101"},
]


# Before issue 10 CSV had no footnote and LaTeX kept them in % comments.
@pytest.mark.parametrize("fmt", leaderboard.FORMATS)
@pytest.mark.parametrize("number", ["1", "2"])
def test_every_marked_value_is_explained_in_every_format(fmt, number):
    table = leaderboard.with_results(leaderboard.get_table(number), RECORDS)
    daggers = [f for f in table.footnotes if f.startswith("†")]
    assert len(daggers) == 1 and "16.7†" in leaderboard.render(table, "md")
    text = leaderboard.render(leaderboard.with_results(leaderboard.get_table(number), RECORDS), fmt)
    shown = "\n".join(line for line in text.splitlines() if not line.startswith("%"))  # LaTeX comments are not shown
    for note in table.footnotes:
        if fmt == "latex":
            note = leaderboard._tex_escape(note)
        elif fmt == "html":
            import html

            note = html.escape(note)
        assert note in shown, f"{fmt}: footnote not shown: {note}"
    if fmt == "csv":
        import io

        import pandas as pd

        frame = pd.read_csv(io.StringIO(text))
        notes = frame[frame["kind"] == "footnote"].iloc[:, 0].tolist()
        assert notes == table.footnotes


def test_readme_alias_form_of_the_metric_works(tmp_path, monkeypatch):
    """`--metric is-tganv2` (the README's form) was an unknown metric before issue 10."""
    from vgbench.metrics.contract import build_request

    assert build_request("is-tganv2", samples="x").name == "is.tganv2"
    assert build_request("is-styleganv", samples="x").name == "is.styleganv"
    monkeypatch.setattr(inception.C3DExtractor, "from_card", classmethod(lambda cls, *a, **k: _FakeC3D()))
    np.save(tmp_path / "s.npy", random_videos(3, t=16))
    r = api.evaluate("is-tganv2", tmp_path / "s.npy", allow_fewer=True, device="cpu")
    assert r.metric == "is" and r.protocol == "tganv2"


def test_pre_scan_reads_only_the_videos_the_protocol_uses(tmp_path):
    v = random_videos(30, t=9, h=4, w=4).astype(np.float32) / 255.0
    v[25:] = 7.0  # beyond the first 20: never read by a protocol that takes 2 trials of 10
    np.save(tmp_path / "x.npy", v)
    s = SampleSet.open(tmp_path / "x.npy", "0-1")
    need = validation.Need("test", min_frames=9)
    assert validation.check(s, need, stop=20, per_trial=10) == []
    assert s.scan.videos == 20 and s.scan.hi <= 1.0
