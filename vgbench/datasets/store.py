"""The prepared-store format shared by every dataset (``vgbench-video-store/1``).

Layout of a store folder (``<data root>/<dataset>/prepared/<variant>/``)::

    manifest.json              format, dataset, variant, preprocessing parameters, source hashes, vgbench version;
                               "complete" and per-split counts once preparation finished
    failures.jsonl             failures outside any shard (e.g. a source file without records)
    <split>/shard-00000.npy    uint8 (sum of frames, H, W, C): the frames of the shard's videos, concatenated
    <split>/shard-00000.<x>.npy per-video extras (BAIR: actions (n, 30, 4), endeffector_pos (n, 30, 3))
    <split>/shard-00000.json   the shard's videos: name, label, start (first frame row), length; sha256 of its .npy
                               files; the videos of the shard that could not be used, with the reason.
                               Written last: a shard is finished exactly when its .json exists.

Every file is written atomically, so an interrupted preparation leaves finished shards and no half-written ones;
a re-run skips shards whose .json exists. Reading memory-maps the .npy files: memory does not grow with the
number of videos and DataLoader workers share pages.
"""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vgbench import hub
from vgbench.errors import InputError, VgbenchError

FORMAT = "vgbench-video-store/1"


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _write_json(path: Path, obj) -> None:
    hub.atomic_write_bytes(path, (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode())


def _write_npy(path: Path, array: np.ndarray) -> str:
    with hub.atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, np.ascontiguousarray(array))
    return hub.sha256_file(path)


class StoreWriter:
    """Writes a store; refuses to mix parameters with an existing, differently prepared one."""

    def __init__(self, folder: Path, dataset: str, variant: str, params: dict, sources: dict):
        from vgbench import __version__

        self.folder = Path(folder)
        path = self.folder / "manifest.json"
        if path.exists():
            old = json.loads(path.read_text())
            if old.get("params") != params:
                raise VgbenchError(
                    f"{self.folder} was prepared with other parameters ({old.get('params')}, now {params}); "
                    "delete it or use another --root"
                )
        self.manifest = {
            "format": FORMAT,
            "dataset": dataset,
            "variant": variant,
            "params": params,
            "sources": sources,
            "vgbench_version": __version__,
            "started": _now(),
            "complete": False,
        }
        self.folder.mkdir(parents=True, exist_ok=True)
        _write_json(path, self.manifest)

    def done(self, split: str, shard: int) -> bool:
        """True when the shard was finished by this or an earlier run."""
        return (self.folder / split / f"shard-{shard:05d}.json").exists()

    def write_shard(
        self, split: str, shard: int, frames: np.ndarray, videos: list[dict], extras: dict | None = None
    ) -> None:
        """Write one shard: frames (sum T, H, W, C) uint8, its video entries, per-video extras; .json last."""
        write_shard(self.folder, split, shard, frames, videos, extras)

    def fail(self, split: str, name: str, reason: str) -> None:
        """Record a video that could not be used (never dropped silently)."""
        hub.append_line(self.folder / "failures.jsonl", json.dumps({"split": split, "name": name, "reason": reason}))

    def finish(self, expected: dict[str, int], notes: list[str] | None = None) -> dict:
        """Mark the store complete with per-split counts; returns the manifest."""
        store = Store(self.folder)
        counts = {s: store.count(s) for s in store.splits}
        self.manifest.update(
            complete=True,
            finished=_now(),
            counts=counts,
            expected=expected,
            failures=len(store.failures()),
            notes=notes or [],
        )
        _write_json(self.folder / "manifest.json", self.manifest)
        return self.manifest


def write_shard(
    folder: Path,
    split: str,
    shard: int,
    frames: np.ndarray,
    videos: list[dict],
    extras: dict | None = None,
    failures: list[dict] | None = None,
) -> None:
    """Write one shard atomically (usable from worker processes): the .npy files first, then the .json.

    ``failures``: the shard's videos that could not be used ({name, reason}); kept with the shard so a resumed run
    still reports them."""
    if frames.dtype != np.uint8 or frames.ndim != 4:
        raise VgbenchError(f"shard frames must be uint8 (sum T, H, W, C), got {frames.dtype}{frames.shape}")
    d = Path(folder) / split
    d.mkdir(parents=True, exist_ok=True)
    base = f"shard-{shard:05d}"
    hashes = {"frames": _write_npy(d / f"{base}.npy", frames)}
    for key, arr in (extras or {}).items():
        if len(arr) != len(videos):
            raise VgbenchError(f"extra {key!r} has {len(arr)} rows for {len(videos)} videos")
        hashes[key] = _write_npy(d / f"{base}.{key}.npy", arr)
    meta = {"videos": videos, "sha256": hashes, "frames_shape": list(frames.shape), "failures": failures or []}
    _write_json(d / f"{base}.json", meta)


@dataclass
class VideoRef:
    """Where one video of a split lives."""

    shard: int
    start: int
    length: int
    name: str
    label: int | None
    row: int  # index within the shard (for extras)


@dataclass
class Store:
    """A prepared store opened for reading (memory-mapped)."""

    folder: Path
    manifest: dict = field(init=False)
    _index: dict = field(init=False, default_factory=dict)
    _maps: dict = field(init=False, default_factory=dict)

    def __post_init__(self):
        self.folder = Path(self.folder)
        path = self.folder / "manifest.json"
        if not path.exists():
            raise InputError(
                f"{self.folder}: no prepared store here (manifest.json missing); run `vgbench data prepare`"
            )
        self.manifest = json.loads(path.read_text())
        if self.manifest.get("format") != FORMAT:
            raise InputError(f"{path}: format {self.manifest.get('format')!r}, expected {FORMAT!r}")

    def __getstate__(self):  # pickled into spawned DataLoader workers: never ship the memory maps' contents
        return {**self.__dict__, "_maps": {}}

    def __setstate__(self, state):
        self.__dict__.update(state)

    @property
    def splits(self) -> list[str]:
        """Splits with at least one finished shard."""
        return sorted(
            p.name
            for p in self.folder.iterdir()
            if p.is_dir() and any(json.loads(f.read_text())["videos"] for f in p.glob("shard-*.json"))
        )

    def videos(self, split: str) -> list[VideoRef]:
        """Every video of ``split`` in shard order."""
        if split not in self._index:
            d = self.folder / split
            files = sorted(d.glob("shard-*.json")) if d.is_dir() else []
            if not files:
                raise InputError(f"{self.folder}: no split {split!r}; available: {', '.join(self.splits) or '(none)'}")
            refs = []
            for f in files:
                shard = int(f.stem.split("-")[1])
                for row, v in enumerate(json.loads(f.read_text())["videos"]):
                    refs.append(VideoRef(shard, v["start"], v["length"], v["name"], v.get("label"), row))
            self._index[split] = refs
        return self._index[split]

    def count(self, split: str) -> int:
        """Number of videos in ``split``."""
        return len(self.videos(split))

    def _array(self, split: str, shard: int, key: str = "") -> np.ndarray:
        k = (split, shard, key)
        if k not in self._maps:
            name = f"shard-{shard:05d}{'.' + key if key else ''}.npy"
            self._maps[k] = np.load(self.folder / split / name, mmap_mode="r")
        return self._maps[k]

    def frames(self, split: str, i: int, start: int = 0, stop: int | None = None, step: int = 1) -> np.ndarray:
        """Frames [start:stop:step] of video ``i`` as uint8 (T, H, W, C) (a copy, not a view of the map)."""
        v = self.videos(split)[i]
        stop = v.length if stop is None else stop
        return np.array(self._array(split, v.shard)[v.start + start : v.start + stop : step])

    def extra(self, split: str, i: int, key: str) -> np.ndarray:
        """A per-video extra (e.g. BAIR ``actions``) of video ``i``."""
        v = self.videos(split)[i]
        return np.array(self._array(split, v.shard, key)[v.row])

    def failures(self) -> list[dict]:
        """Every recorded failure: {split, name, reason} from the shards and from failures.jsonl."""
        out = []
        for d in sorted(p for p in self.folder.iterdir() if p.is_dir()):
            for f in sorted(d.glob("shard-*.json")):
                out += [{"split": d.name, **x} for x in json.loads(f.read_text()).get("failures", [])]
        path = self.folder / "failures.jsonl"
        if path.exists():
            out += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return out

    def verify(self) -> None:
        """Re-hash every shard file against its .json."""
        for split in self.splits:
            for f in sorted((self.folder / split).glob("shard-*.json")):
                for key, digest in json.loads(f.read_text())["sha256"].items():
                    npy = f.with_suffix(".npy") if key == "frames" else f.with_name(f"{f.stem}.{key}.npy")
                    hub.verify_file(npy, digest, remedy="Delete the shard (.json and .npy) and prepare again.")

    def info(self) -> dict:
        """Counts, frame shapes, disk size, failures and the manifest."""
        splits = {}
        for s in self.splits:
            refs = self.videos(s)
            first = self._array(s, refs[0].shard)
            lengths = [r.length for r in refs]
            splits[s] = {
                "videos": len(refs),
                "frames": int(sum(lengths)),
                "frame_shape": list(first.shape[1:]),
                "length_min": int(min(lengths)),
                "length_max": int(max(lengths)),
            }
        size = sum(p.stat().st_size for p in self.folder.rglob("*") if p.is_file())
        return {
            "folder": str(self.folder),
            "splits": splits,
            "disk_bytes": size,
            "failures": len(self.failures()),
            "manifest": self.manifest,
        }
