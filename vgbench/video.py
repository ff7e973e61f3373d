"""The tensor contract and sample-set readers.

Contract:
- on disk and between stages: ``uint8 (N, T, H, W, C)``, C = 3 (RGB); float arrays are accepted with a declared
  or detected value range (``0-1``, ``-1-1`` or ``0-255``);
- inside models: ``float32 (B, C, T, H, W)`` in a documented range (I3D: [-1, 1]).

A :class:`SampleSet` reads any supported input as a stream of ``(B, T, H, W, C)`` numpy batches, so memory does
not grow with the number of videos. Inputs: a directory of videos (mp4/avi/webm/gif/mov/mkv, decoded with
PyAV), a directory of per-video folders of PNG/JPG frames, ``.npy``/``.npz`` arrays, HDF5 files (``h5py``).
Every batch is validated by the rules of :mod:`vgbench.validation` (shared with ``vgbench doctor``): rank,
channels, frame count, NaN/inf, values outside the range, mixed shapes. Files are opened through the error boundary
of :mod:`vgbench.readers`, so a damaged, truncated, empty or unreadable file is an :class:`InputError` naming it.
Each set is named by the sha256 of its content (:mod:`vgbench.contenthash`) in cache keys and result records.

:func:`decode_video` is the package's only video decoder: sample sets and dataset preparation (``vgbench data
prepare``) read the same file to the same pixels.
"""

from __future__ import annotations

import hashlib
import logging
import os
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vgbench import samplesdir, validation
from vgbench.decode import (  # noqa: F401  (re-exported: the sample-set reader's names)
    IMAGE_EXTS,
    VIDEO_EXTS,
    VideoDecodeError,
    _av,
    decode_image,
    decode_video,
    probe_video,
)
from vgbench.deps import require
from vgbench.errors import InputError
from vgbench.readers import load_npy, reading
from vgbench.tensors import RANGE_TOL, detect_range, parse_range, to_0_255  # noqa: F401 (the reader's names)

log = logging.getLogger(__name__)

ARRAY_KEYS = ("videos", "samples", "arr_0", "x", "data")  # npz/HDF5 keys tried when there are several


# ----------------------------------------------------------------------------------------------------------
# Readers: each yields single videos (T, H, W, C) or slices of an array, with a known count.


def _npz_member(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as zf:
            members = [n[:-4] for n in zf.namelist() if n.endswith(".npy")]
    except zipfile.BadZipFile as exc:
        raise InputError(
            f"{path}: not a .npz file ({exc}: damaged, truncated or another format); expected arrays saved with "
            "np.savez"
        ) from exc
    if not members:
        raise InputError(f"{path}: a zip archive without arrays; expected a .npz file saved with np.savez")
    if len(members) == 1:
        return members[0]
    for key in ARRAY_KEYS:
        if key in members:
            return key
    raise InputError(
        f"{path}: several arrays {members} and none is named one of {list(ARRAY_KEYS)}; "
        "save the videos under the key 'videos'"
    )


def _open_npz_array(path: Path, key: str) -> np.ndarray:
    """A read-only memory map of an uncompressed npz member (no copy); a compressed one is loaded whole."""
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(key + ".npy")
    if info.compress_type == zipfile.ZIP_STORED:
        with open(path, "rb") as f:
            f.seek(info.header_offset)
            local = f.read(30)  # zip local file header: name and extra lengths at bytes 26-29
            names = int.from_bytes(local[26:28], "little") + int.from_bytes(local[28:30], "little")
            member_start = info.header_offset + 30 + names
            f.seek(member_start)
            version = np.lib.format.read_magic(f)
            reader = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}.get(
                version
            )
            if reader is not None:
                shape, fortran, dtype = reader(f)
                if dtype.hasobject:
                    raise InputError(
                        f"{path}:{key}: holds Python objects (dtype {dtype}); expected videos of plain numbers. "
                        "Save them with a numeric dtype, e.g. np.savez(path, videos=x.astype(np.uint8))"
                    )
                if fortran:
                    raise InputError(
                        f"{path}:{key}: Fortran-order arrays are not supported; save np.ascontiguousarray(x)"
                    )
                need = int(np.prod(shape)) * dtype.itemsize
                have = min(member_start + info.file_size, os.path.getsize(path)) - f.tell()
                if have < need:
                    raise InputError(
                        f"{path}:{key}: truncated: its header declares {dtype}{tuple(shape)} = {need} bytes of data, "
                        f"the archive holds {have}; write it again"
                    )
                return np.memmap(path, dtype=dtype, mode="r", offset=f.tell(), shape=shape)
    log.warning(
        "%s: npz member %r is compressed and is decompressed into memory; store it uncompressed "
        "(np.savez, not savez_compressed) to stream it",
        path,
        key,
    )
    with np.load(path, allow_pickle=False) as z:
        return z[key]


# ----------------------------------------------------------------------------------------------------------
# Sets written by `vgbench sample`: samples.npz beside its samples.json provenance sidecar

def generated_by(videos: SampleSet) -> tuple[dict, list[str]]:
    """``{"generated_by": sidecar}`` for a set ``vgbench sample`` wrote (what a result record copies: checkpoint
    sha256 and card, seeds, sampling settings, conditioning), and notes.

    The sidecar beside an array file (``samples.json`` beside ``samples.npz``, ``x.json`` beside ``x.npy``) is
    copied only when it describes these very samples: the content sha256 it records (or, for sidecars without
    one, the count and array shape) must match. Otherwise it is left out and a note says why.
    """
    if videos.kind not in ("npz", "npy"):
        return {}, []

    where = videos.path.with_suffix(".json")
    try:
        side = samplesdir.read_sidecar(videos.path)
    except OSError as exc:
        note = f"{where}: could not be read ({exc.strerror or exc}); its provenance is not copied"
        log.warning("%s", note)
        return {}, [note]
    if side is None:
        return {}, []
    if side.get("samples_sha256"):
        matched, how = side["samples_sha256"] == videos.content_sha256(), "samples_sha256"
    else:
        shape = list(videos._array.shape)
        matched, how = (side.get("count") == videos.count and side.get("shape") == shape), "count and shape"
    if not matched:
        note = (
            f"{where} does not describe {videos.path} (its {how} differ from the file's): the samples were "
            "replaced after `vgbench sample` wrote it; its provenance is not copied"
        )
        log.warning("%s", note)
        return {}, [note]
    info = {k: v for k, v in side.items() if k != "format"}
    return {"generated_by": {**info, "sidecar": str(where.resolve()), "sidecar_format": side["format"],
                             "matched_by": how}}, []  # fmt: skip


@dataclass
class SampleSet:
    """A set of videos read as a stream of batches (see the module docstring for the accepted inputs)."""

    path: Path
    kind: str  # "npy", "npz", "hdf5", "videos", "frames", "dataset", "array"
    count: int
    dtype: str
    value_range: str | None = None  # resolved range ('0-255', '0-1', '-1-1')
    range_source: str = ""  # 'dtype', 'declared' or 'detected'
    files: list[Path] = field(default_factory=list)
    _array: object = None
    _h5: object = None
    _dataset: object = None  # a ClipDataset for dataset references (bair:test)
    ref: str = ""
    scan: validation.SetScan | None = None  # what eval's pre-scan saw (validation.check)
    seen: validation.SetScan | None = None  # clip shapes and value extremes iter_batches read
    _sha256: str | None = None

    # -- construction ---------------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | os.PathLike, value_range: str | None = None) -> SampleSet:
        """Open a sample set; ``value_range`` declares float inputs' range (None: detect)."""
        declared = parse_range(value_range)
        if not Path(path).exists():
            from vgbench import datasets

            if datasets.parse_ref(str(path)) is not None:
                ds = datasets.open_split(str(path))
                s = cls(ds.store.folder, "dataset", len(ds), "uint8", _dataset=ds, ref=str(path))
                s._resolve_range(declared)
                return s
            raise InputError(
                f"{path}: no such file or directory (nor a dataset reference NAME:SPLIT such as bair:test)"
            )
        path = Path(path)
        if path.is_dir() and samplesdir.sampled_folder(path):
            # a `vgbench sample` folder: its grid.gif / grid.mp4 are not the samples
            path = path / samplesdir.SAMPLES_FILE
        if path.is_file():
            suffix = path.suffix.lower()
            if suffix == ".npy":
                arr = load_npy(path, "a .npy array of videos (N, T, H, W, C)")
                s = cls(path, "npy", 0, str(arr.dtype), _array=arr)
            elif suffix == ".npz":
                with reading(path, "a .npz archive of videos (np.savez)"):
                    arr = _open_npz_array(path, _npz_member(path))
                s = cls(path, "npz", 0, str(arr.dtype), _array=arr)
            elif suffix in (".h5", ".hdf5"):
                with reading(path, "an HDF5 file of videos (N, T, H, W, C)"):
                    s = cls._open_hdf5(path)
            elif suffix in VIDEO_EXTS:
                s = cls(path.parent, "videos", 1, "uint8", files=[path])
            else:
                raise InputError(
                    f"{path}: unsupported file type {suffix!r}; use a directory of videos or frames, .npy, .npz or .h5"
                )
            if s._array is not None:
                s._check_array_shape(s._array.shape)
                s.count = int(s._array.shape[0])
        else:
            with reading(path, "a folder of videos or of frame folders"):
                s = cls._open_dir(path)
        if s.count == 0:
            raise InputError(f"{path}: the sample set is empty")
        s._resolve_range(declared)
        return s

    @classmethod
    def from_array(cls, array: np.ndarray, value_range: str | None = None, name: str = "<array>") -> SampleSet:
        """Videos held in memory, ``(N, T, H, W, C)``, as a sample set checked like a file's (streaming metrics)."""
        s = cls(Path(name), "array", int(array.shape[0]) if array.ndim else 0, str(array.dtype), _array=array)
        s._check_array_shape(array.shape)
        if s.count == 0:
            raise InputError(f"{name}: no videos in the batch")
        s._resolve_range(parse_range(value_range))
        return s

    @classmethod
    def _open_hdf5(cls, path: Path) -> SampleSet:
        h5py = require("h5py", "data", "reading HDF5 sample sets")
        f = h5py.File(path, "r")
        keys = [k for k in f if isinstance(f[k], h5py.Dataset)]
        key = keys[0] if len(keys) == 1 else next((k for k in ARRAY_KEYS if k in keys), None)
        if key is None:
            f.close()
            if not keys:
                raise InputError(f"{path}: an HDF5 file without datasets; expected videos (N, T, H, W, C) in one")
            raise InputError(f"{path}: datasets {keys}; none is named one of {list(ARRAY_KEYS)}")
        return cls(path, "hdf5", 0, str(f[key].dtype), _array=f[key], _h5=f)

    @classmethod
    def _open_dir(cls, path: Path) -> SampleSet:
        entries = sorted(p for p in path.iterdir() if not p.name.startswith("."))
        videos = [p for p in entries if p.is_file() and p.suffix.lower() in VIDEO_EXTS]
        frame_dirs = [p for p in entries if p.is_dir() and cls.frame_files(p)]
        if videos and frame_dirs:
            raise InputError(f"{path}: holds both video files and frame folders; keep one kind per directory")
        if videos:
            return cls(path, "videos", len(videos), "uint8", files=videos)
        if frame_dirs:
            return cls(path, "frames", len(frame_dirs), "uint8", files=frame_dirs)
        raise InputError(
            f"{path}: no videos ({', '.join(VIDEO_EXTS)}) and no folders of frames "
            f"({', '.join(IMAGE_EXTS)}) found; the directory is empty or unreadable"
        )

    @staticmethod
    def frame_files(folder: Path) -> list[Path]:
        """The image files of one video's frame folder, in name order (the frame order)."""
        with reading(folder, "a folder of frames"):
            return sorted(q for q in folder.iterdir() if q.suffix.lower() in IMAGE_EXTS and not q.name.startswith("."))

    def _check_array_shape(self, shape: tuple) -> None:
        if len(shape) != 5:
            raise InputError(
                f"{self.path}: expected an array of rank 5 (N, T, H, W, C), got shape {tuple(shape)}. "
                "A single video needs a leading axis (x[None]); channels go last."
            )
        if shape[0] and 0 in shape[1:4]:
            raise InputError(
                f"{self.path}: shape {tuple(shape)} holds {shape[0]} videos of no frames or pixels (T, H, W = "
                f"{tuple(shape[1:4])}); expected (N, T, H, W, C) with T, H, W >= 1"
            )
        if shape[-1] != 3:
            hint = " (channels first? transpose to (N, T, H, W, C))" if shape[2] == 3 or shape[1] == 3 else ""
            hint += " (grayscale? repeat to 3 channels: np.repeat(x, 3, axis=-1))" if shape[-1] == 1 else ""
            raise InputError(f"{self.path}: expected 3 RGB channels in the last axis, got shape {tuple(shape)}{hint}")

    def _resolve_range(self, declared: str | None) -> None:
        if self.dtype == "uint8":
            if declared not in (None, "0-255"):
                raise InputError(f"{self.path}: uint8 data is on the 0-255 scale, but --range {declared} was given")
            self.value_range, self.range_source = "0-255", "dtype"
        elif declared is not None:
            self.value_range, self.range_source = declared, "declared"
        elif not np.issubdtype(np.dtype(self.dtype), np.floating) and not np.issubdtype(
            np.dtype(self.dtype), np.integer
        ):
            raise InputError(f"{self.path}: unsupported dtype {self.dtype}; use uint8 or float")
        else:
            first = next(self.raw_videos(0, min(self.count, 16)))
            self._check_finite(first, 0)
            self.value_range, self.range_source = detect_range(first), "detected"
            log.info(
                "%s: value range %s detected from the first videos (override with --range)", self.path, self.value_range
            )

    # -- reading --------------------------------------------------------------------------------------------

    def raw_videos(self, start: int, stop: int) -> Iterator[np.ndarray]:
        """Batches or single videos of the raw data, covering [start, stop)."""
        if isinstance(self._array, np.memmap) and self._array.flags.c_contiguous:
            # Plain reads of each chunk: mapped pages would stay resident and make RSS grow with N. (A Fortran-order
            # file is read through the map, which knows its order.)
            arr = self._array
            per = int(np.prod(arr.shape[1:]))
            for i in range(start, stop, 16):
                k = min(16, stop - i)
                flat = np.fromfile(
                    arr.filename, dtype=arr.dtype, count=k * per, offset=arr.offset + i * per * arr.dtype.itemsize
                )
                yield flat.reshape((k,) + arr.shape[1:])
        elif self._array is not None:
            for i in range(start, stop, 16):
                yield np.asarray(self._array[i : min(i + 16, stop)])
        elif self._dataset is not None:
            for i in range(start, stop):
                yield self._dataset[i]["video"].numpy()[None]
        else:
            for i in range(start, stop):
                p = self.files[i]
                if self.kind == "videos":
                    yield decode_video(p)[None]
                else:
                    frames = [decode_image(q) for q in self.frame_files(p)]
                    sizes = sorted({f.shape for f in frames})
                    if len(sizes) > 1:
                        raise InputError(
                            f"{p}: frames of different sizes {sizes}; every frame of a video must share one"
                        )
                    yield np.stack(frames)[None]

    def name_of(self, index: int) -> str:
        """A human-readable name of video ``index`` for error messages."""
        if self._dataset is not None:
            return f"{self.ref}[{index}]"
        return str(self.files[index]) if self.files else f"{self.path}[{index}]"

    def _check_finite(self, batch: np.ndarray, offset: int) -> None:
        problem = validation.finite_problem(batch, self.name_of, offset)
        if problem is not None:
            raise InputError(problem.message)

    def default_need(self, frames: int | None = None, min_frames: int = 1) -> validation.Need:
        """The :class:`~vgbench.validation.Need` of a caller that gives only a clip length and a minimum."""
        reason = " (I3D downsamples time x8 and then pools 2 steps)" if min_frames > 1 else ""
        return validation.Need("this metric", frames, min_frames, reason)

    def iter_batches(
        self,
        batch_size: int,
        start: int = 0,
        stop: int | None = None,
        frames: int | None = None,
        min_frames: int = 1,
        need: validation.Need | None = None,
    ) -> Iterator[np.ndarray]:
        """Validated batches (B, T, H, W, 3) covering videos [start, stop); ``frames`` keeps the first T frames.

        Every video is checked by the rules of :mod:`vgbench.validation` under ``need`` (default: ``frames`` and
        ``min_frames``) as it is read; the shapes and value extremes read are added to :attr:`seen`."""
        need = need or self.default_need(frames, min_frames)
        stop = self.count if stop is None else stop
        if self.seen is None:
            self.seen = validation.SetScan(total=self.count)
        first: tuple | None = None
        pending: list[np.ndarray] = []
        pending_n, pos = 0, start
        for raw in self.raw_videos(start, stop):
            problem = validation.clip_problem(self.name_of(pos), raw.shape[1:], need, first)
            if problem is not None:
                raise InputError(problem.message)
            if need.frames is not None:
                raw = raw[:, : need.frames]
            first = first or raw.shape[1:]
            self._check_finite(raw, pos)
            lo, hi = float(raw.min()), float(raw.max())
            problem = validation.range_problem(
                self.path, lo, hi, pos, pos + len(raw) - 1, self.value_range, self.range_source, raw.dtype
            )
            if problem is not None:
                raise InputError(problem.message)
            self.seen.add_extremes(raw.shape[1:], len(raw), lo, hi)
            pending.append(raw)
            pending_n += raw.shape[0]
            pos += raw.shape[0]
            while pending_n >= batch_size:
                joined = np.concatenate(pending) if len(pending) > 1 else pending[0]
                yield joined[:batch_size]
                rest = joined[batch_size:]
                pending, pending_n = ([rest] if len(rest) else []), len(rest)
        if pending_n:
            yield np.concatenate(pending) if len(pending) > 1 else pending[0]

    def clip_shape(self) -> list[int] | None:
        """The set's clip shape [T, H, W] as the metric read it (after the protocol's cut): from the videos read, or
        else from the pre-scan; None when unknown or not uniform."""
        for scan in (self.seen, self.scan):
            if scan is not None and scan.shape is not None and None not in scan.shape:
                return list(scan.shape)
        return None

    def content_sha256(self) -> str:
        """The sha256 naming this set's content (:mod:`vgbench.contenthash`): of the file; of every file's name and
        hash for a folder; of the split's shards and the window parameters for a dataset reference; of the dtype,
        shape and bytes for an array in memory. Computed once."""
        if self._sha256 is None:
            self._sha256 = self._content_sha256()
        return self._sha256

    def _content_sha256(self) -> str:
        from vgbench import contenthash

        if self._dataset is not None:
            ds = self._dataset
            split = ds.split
            shards = sorted({v.shard for v in ds.store.videos(split)})
            files = [ds.store.folder / split / f"shard-{k:05d}.npy" for k in shards]
            params = [(f"{self.ref}:clip_len={ds.clip_len}:seed={ds.seed}:windows={ds.windows}", "")]
            digests = contenthash.file_sha256s(files)
            return contenthash.combine(params + [(f.name, d) for f, d in zip(files, digests, strict=True)])
        if self.kind == "array":
            h = hashlib.sha256(f"{self._array.dtype}{tuple(self._array.shape)}".encode())
            h.update(np.ascontiguousarray(self._array).data)
            return h.hexdigest()
        if self.kind in ("videos", "frames"):
            files = self.files if self.kind == "videos" else [q for d in self.files for q in self.frame_files(d)]
            names = [f.relative_to(self.path).as_posix() for f in files]
            return contenthash.combine(zip(names, contenthash.file_sha256s(files), strict=True))
        return contenthash.file_sha256(self.path)

    def describe(self) -> dict:
        """Provenance of the input: path, kind, count, dtype and range (with how it was decided), the sha256 of its
        content and its clip shape [T, H, W] as read (None until known)."""
        if self._dataset is not None:
            ds = self._dataset
            out = {
                "dataset": self.ref,
                "path": str(self.path),
                "kind": "dataset",
                "count": self.count,
                "dtype": "uint8",
                "range": "0-255",
                "windows": ds.windows,
                "clip_len": ds.clip_len,
                "seed": ds.seed,
                "store_params": ds.store.manifest.get("params"),
            }
        else:
            out = {
                "path": str(self.path.resolve()),
                "kind": self.kind,
                "count": self.count,
                "dtype": self.dtype,
                "range": self.value_range,
                "range_source": self.range_source,
            }
        return {**out, "content_sha256": self.content_sha256(), "clip_shape": self.clip_shape()}
