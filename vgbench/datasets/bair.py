"""BAIR Robot Pushing (softmotion30_44k): TFRecords -> prepared store, without TensorFlow (datasets.md §1).

Each record is a ``tf.train.Example`` with, for t in 0..29, ``{t}/image_aux1/encoded`` and ``{t}/image_main/encoded``
(12,288 raw bytes = 64x64x3 uint8 RGB, HWC), ``{t}/action`` (4 floats) and ``{t}/endeffector_pos`` (3 floats).
Camera ``image_aux1`` is the default (VideoGPT, SVG); ``--camera main`` selects ``image_main``. One shard per
TFRecord file, in the numeric order of its ``traj_<a>_to_<b>`` name; actions and end-effector positions are kept.
The input is the original tar (read in place, not extracted), a folder holding ``train/`` and ``test/`` TFRecords,
or single ``.tfrecords`` files.
"""

from __future__ import annotations

import re
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from vgbench.datasets import tfrecord
from vgbench.datasets.common import Summary, fetch_sources, store_dir
from vgbench.datasets.store import StoreWriter
from vgbench.errors import InputError
from vgbench.readers import reading

CAMERAS = {"aux1": "image_aux1", "main": "image_main"}
FRAME_BYTES = 64 * 64 * 3
FRAMES = 30  # frames per record (the card's preprocess.frames)
SPLITS = ("train", "test")
SOURCE_LAYOUT = (
    "bair_robot_pushing_dataset_v0.tar (read in place), a folder holding softmotion30_44k/{train,test}/*.tfrecords, "
    "or one .tfrecords file"
)


def _traj_key(name: str) -> tuple:
    m = re.search(r"traj_(\d+)_to_(\d+)", name)
    return (int(m.group(1)), name) if m else (1 << 62, name)


def parse_record(payload: bytes, camera: str = "aux1", where: str = "") -> dict[str, np.ndarray]:
    """One example -> frames uint8 (T, 64, 64, 3), actions float32 (T, 4), endeffector_pos float32 (T, 3)."""
    cam = CAMERAS[camera]
    feats = tfrecord.parse_example(payload)
    times = sorted({int(k.split("/")[0]) for k in feats if k.endswith(f"/{cam}/encoded")})
    if not times or times != list(range(len(times))):
        raise InputError(f"{where}: no consecutive '{{t}}/{cam}/encoded' features; not a BAIR record?")
    frames, actions, eef = [], [], []
    for t in times:
        kind, vals = feats[f"{t}/{cam}/encoded"]
        if kind != "bytes" or len(vals) != 1 or len(vals[0]) != FRAME_BYTES:
            got = len(vals[0]) if vals else 0
            raise InputError(f"{where}: frame {t} of {cam} has {got} bytes, expected {FRAME_BYTES} raw RGB bytes")
        frames.append(np.frombuffer(vals[0], np.uint8).reshape(64, 64, 3))
        actions.append(feats.get(f"{t}/action", ("float", [np.nan] * 4))[1])
        eef.append(feats.get(f"{t}/endeffector_pos", ("float", [np.nan] * 3))[1])
    return {
        "frames": np.stack(frames),
        "actions": np.asarray(actions, np.float32),
        "endeffector_pos": np.asarray(eef, np.float32),
    }


def read_file(
    f: BinaryIO, name: str, camera: str = "aux1", frames: int | None = None
) -> Iterator[dict[str, np.ndarray]]:
    """Every example of one TFRecord stream, parsed; errors name the file and the record's byte offset.

    ``frames``: the number of frames every record must have (the card's 30); None accepts any."""
    for offset, payload in tfrecord.iter_records(f, name):
        where = f"{name} (record at byte {offset})"
        ex = parse_record(payload, camera, where)
        if frames is not None and len(ex["frames"]) != frames:
            raise InputError(f"{where}: {len(ex['frames'])} frames, the card's BAIR records have {frames}")
        yield ex


def _sources(path: Path) -> dict[str, list[tuple[str, str, object]]]:
    """split -> [(name, where, opener)] from a tar, a folder or a single file (``where``: the full path, or
    ``archive:member``, for messages)."""
    out: dict[str, list] = {s: [] for s in SPLITS}
    if path.is_file() and path.suffix == ".tfrecords":
        split = path.parent.name if path.parent.name in SPLITS else "test"
        out[split].append((path.name, str(path), lambda p=path: open(p, "rb")))  # noqa: SIM115 (caller's `with`)
    elif path.is_file():
        with reading(path, "a tar archive", f"bair expects {SOURCE_LAYOUT}"):
            if path.stat().st_size == 0:
                raise InputError(f"{path}: empty file; bair expects {SOURCE_LAYOUT}")
            try:
                tar = tarfile.open(path, "r:")  # noqa: SIM115 (members are read lazily, one shard at a time)
                members = [m for m in tar.getmembers() if m.isfile() and m.name.endswith(".tfrecords")]
            except (tarfile.TarError, EOFError) as exc:
                raise InputError(
                    f"{path}: not a readable tar archive ({exc}); the download may be truncated. "
                    f"bair expects {SOURCE_LAYOUT}"
                ) from exc
        for m in members:
            split = Path(m.name).parent.name
            if split in out:
                out[split].append((Path(m.name).name, f"{path}:{m.name}", lambda m=m, t=tar: t.extractfile(m)))
    elif path.is_dir():
        for p in path.rglob("*.tfrecords"):
            split = p.parent.name
            if split in out:
                out[split].append((p.name, str(p), lambda p=p: open(p, "rb")))  # noqa: SIM115
    else:
        raise InputError(f"{path}: no such file or directory")
    if not any(out.values()):
        raise InputError(f"{path}: no train/*.tfrecords or test/*.tfrecords found; bair expects {SOURCE_LAYOUT}")
    return {s: sorted(v, key=lambda x: _traj_key(x[0])) for s, v in out.items() if v}


def _prescan(path: Path, files: dict[str, list[tuple[str, str, object]]]) -> None:
    """Check every file's record framing before anything is written: each record's length header and its CRC,
    seeking over the payloads (cheap: 16 bytes read per record). A file that is not a TFRecord, or is truncated,
    stops the run here, not after hours of conversion; payload CRCs are checked while converting."""
    found = False
    for entries in files.values():
        for _, where, opener in entries:
            try:
                with reading(where, "a TFRecord file"), opener() as f:
                    found |= sum(1 for _ in tfrecord.scan_records(f, where)) > 0
            except InputError as exc:
                raise InputError(f"{exc}. bair expects {SOURCE_LAYOUT}") from exc
    if not found:
        raise InputError(f"{path}: every .tfrecords file in it is empty; bair expects {SOURCE_LAYOUT}")


def prepare(card, root=None, src: Path | None = None, camera: str = "aux1", force: bool = False) -> Summary:
    """Convert the TFRecords to a store ``bair/prepared/<camera>``; resumable per file."""
    if camera not in CAMERAS:
        raise InputError(f"unknown BAIR camera {camera!r}; allowed: {', '.join(CAMERAS)}")
    path = Path(src) if src else fetch_sources(card, ["tar"], root)["tar"]
    files = _sources(path)
    _prescan(path, files)
    frames = int(card.preprocess.get("frames", FRAMES))
    folder = store_dir(card.name, CAMERAS[camera], root)
    params = {"camera": CAMERAS[camera], "size": 64, "frames": frames}
    writer = StoreWriter(folder, card.name, CAMERAS[camera], params, {"input": path}, (64, 64, 3), force)
    summary = Summary(card.name, folder)
    with writer.session():
        for split, entries in files.items():
            for shard, (name, where, opener) in enumerate(entries):
                if writer.done(split, shard):
                    summary.skipped_shards += 1
                    continue
                with reading(where, "a TFRecord file"), opener() as f:
                    examples = list(read_file(f, where, camera, frames))
                videos = [
                    {"name": f"{Path(name).stem}/{k}", "label": None, "start": k * frames, "length": frames}
                    for k in range(len(examples))
                ]
                failures = [] if examples else [{"name": name, "kind": "no_records", "reason": f"{where}: no records"}]
                writer.write_shard(
                    split,
                    shard,
                    np.concatenate([e["frames"] for e in examples]) if examples else np.zeros((0, 64, 64, 3), np.uint8),
                    videos,
                    {k: np.stack([e[k] for e in examples]) for k in ("actions", "endeffector_pos")} if examples else {},
                    failures,
                )
                summary.written_shards += 1
    summary.record(writer.finish(dict(card.splits)))
    return summary
