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

CAMERAS = {"aux1": "image_aux1", "main": "image_main"}
FRAME_BYTES = 64 * 64 * 3
SPLITS = ("train", "test")


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


def read_file(f: BinaryIO, name: str, camera: str = "aux1") -> Iterator[dict[str, np.ndarray]]:
    """Every example of one TFRecord stream, parsed; errors name the file and the record's byte offset."""
    for offset, payload in tfrecord.iter_records(f, name):
        yield parse_record(payload, camera, f"{name} (record at byte {offset})")


def _sources(path: Path) -> dict[str, list[tuple[str, object]]]:
    """split -> [(name, opener)] from a tar, a folder or a single file."""
    out: dict[str, list] = {s: [] for s in SPLITS}
    if path.is_file() and path.suffix == ".tfrecords":
        split = path.parent.name if path.parent.name in SPLITS else "test"
        out[split].append((path.name, lambda p=path: open(p, "rb")))  # noqa: SIM115 (opened by the caller with `with`)
    elif path.is_file():
        try:
            tar = tarfile.open(path, "r:")  # noqa: SIM115 (members are read lazily, one shard at a time)
            members = [m for m in tar.getmembers() if m.isfile() and m.name.endswith(".tfrecords")]
        except (tarfile.TarError, EOFError) as exc:
            raise InputError(f"{path}: not a readable tar archive ({exc}); the download may be truncated") from exc
        for m in members:
            split = Path(m.name).parent.name
            if split in out:
                out[split].append((Path(m.name).name, lambda m=m, t=tar: t.extractfile(m)))
    elif path.is_dir():
        for p in path.rglob("*.tfrecords"):
            split = p.parent.name
            if split in out:
                out[split].append((p.name, lambda p=p: open(p, "rb")))  # noqa: SIM115
    else:
        raise InputError(f"{path}: no such file or directory")
    if not any(out.values()):
        raise InputError(f"{path}: no train/*.tfrecords or test/*.tfrecords found (softmotion30_44k layout)")
    return {s: sorted(v, key=lambda x: _traj_key(x[0])) for s, v in out.items() if v}


def prepare(card, root=None, src: Path | None = None, camera: str = "aux1") -> Summary:
    """Convert the TFRecords to a store ``bair/prepared/<camera>``; resumable per file."""
    if camera not in CAMERAS:
        raise InputError(f"unknown BAIR camera {camera!r}; allowed: {', '.join(CAMERAS)}")
    path = Path(src) if src else fetch_sources(card, ["tar"], root)["tar"]
    folder = store_dir(card.name, CAMERAS[camera], root)
    params = {"camera": CAMERAS[camera], "size": 64, "frames": 30}
    writer = StoreWriter(folder, card.name, CAMERAS[camera], params, {"input": str(Path(path).resolve())})
    summary = Summary(card.name, folder, expected=dict(card.splits))
    for split, files in _sources(path).items():
        for shard, (name, opener) in enumerate(files):
            if writer.done(split, shard):
                summary.skipped_shards += 1
                continue
            with opener() as f:
                examples = list(read_file(f, name, camera))
            if not examples:
                writer.fail(split, name, "no records")
                continue
            t = examples[0]["frames"].shape[0]
            videos = [
                {"name": f"{Path(name).stem}/{k}", "label": None, "start": k * t, "length": t}
                for k in range(len(examples))
            ]
            writer.write_shard(
                split,
                shard,
                np.concatenate([e["frames"] for e in examples]),
                videos,
                {k: np.stack([e[k] for e in examples]) for k in ("actions", "endeffector_pos")},
            )
            summary.written_shards += 1
    manifest = writer.finish(dict(card.splits))
    summary.counts, summary.failures = manifest["counts"], manifest["failures"]
    return summary
