"""A training run's folder: ``config.json``, the metrics log (JSONL, CSV, TensorBoard), ``checkpoints/``, ``samples/``.

Only rank 0 writes; every file is written atomically or appended line by line, so an interrupted run leaves a
folder that ``--resume`` continues (records after the checkpoint it resumes from are dropped).
"""

from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path

from vgbench import cache
from vgbench.errors import InputError
from vgbench.models import checkpoint as ckpt_mod

log = logging.getLogger(__name__)

RUN_FORMAT = "vgbench-run/1"


def read_log(path: Path | None) -> list[dict]:
    """The records of a run folder's ``metrics.jsonl`` (none when there is no such file yet)."""
    if path is None or not Path(path).exists():
        return []
    return [json.loads(ln) for ln in Path(path).read_text().splitlines() if ln.strip()]


class RunFolder:
    """``DIR/config.json``, ``metrics.jsonl`` (+ ``metrics.csv``), ``checkpoints/``, ``samples/``; rank 0 writes."""

    def __init__(self, path: Path, writer: bool):
        self.path = Path(path)
        self.ckpts = self.path / "checkpoints"
        self.writer = writer
        if writer:
            self.ckpts.mkdir(parents=True, exist_ok=True)
            (self.path / "samples").mkdir(exist_ok=True)

    @property
    def config_file(self) -> Path:
        return self.path / "config.json"

    def write_config(self, config: dict) -> None:
        if self.writer:
            cache.atomic_write_bytes(self.config_file, (json.dumps(config, indent=1, sort_keys=True) + "\n").encode())

    def read_config(self) -> dict | None:
        return json.loads(self.config_file.read_text()) if self.config_file.exists() else None

    def step_checkpoints(self) -> list[Path]:
        """Step checkpoints, newest first."""
        return sorted(self.ckpts.glob("step-*.pt"), reverse=True)

    def log(self, record: dict) -> None:
        if self.writer:
            cache.append_line(self.path / "metrics.jsonl", json.dumps(record, sort_keys=True))
            tb = self._tensorboard()
            if tb is not None:
                for k, v in record.items():
                    if k not in ("step", "kind") and isinstance(v, int | float):
                        tb.add_scalar(f"{record['kind']}/{k}", v, record["step"])
                tb.flush()

    def _tensorboard(self):
        """A TensorBoard writer into ``DIR/tensorboard`` when the tensorboard package is installed, else None."""
        if not hasattr(self, "_tb"):
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(self.path / "tensorboard"))
            except ImportError:  # optional: the JSONL/CSV logs are always written
                self._tb = None
        return self._tb

    def truncate_log(self, step: int) -> None:
        """Drop records after ``step`` (written after the checkpoint a resumed run starts from)."""
        path = self.path / "metrics.jsonl"
        if not self.writer or not path.exists():
            return
        keep = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln)["step"] <= step]
        cache.atomic_write_bytes(path, ("\n".join(keep) + "\n" if keep else "").encode())

    def records(self) -> list[dict]:
        return read_log(self.path / "metrics.jsonl")

    def write_csv(self) -> None:
        """metrics.csv: the JSONL log as a table (one row per record, union of columns)."""
        if not self.writer:
            return
        rows = self.records()
        cols = ["step", "kind", *sorted({k for r in rows for k in r} - {"step", "kind"})]
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
        cache.atomic_write_bytes(self.path / "metrics.csv", buf.getvalue().encode())


def newest_valid_checkpoint(run: RunFolder) -> ckpt_mod.Checkpoint | None:
    """The newest step checkpoint that loads; a damaged newer one is reported and skipped."""
    for path in run.step_checkpoints():
        try:
            return ckpt_mod.load(path)
        except InputError as exc:
            log.warning("skipping damaged checkpoint %s (%s); using the one before", path, exc)
    return None
