"""The samples folder format: what ``vgbench sample`` writes and everything that reads it (``vgbench eval``, the
record builders, the trainer's preview samples).

- ``samples.npz``: uint8 (N, T, H, W, 3) under ``videos``;
- ``samples.json``: the sidecar (format :data:`SIDECAR_FORMAT`): checkpoint, seeds, sampling settings, timing,
  versions; copied into the record of every evaluation of these samples.

Sample ``i`` of a run seeded with ``S`` draws its randomness from :func:`sample_seed` (S, i) alone.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from vgbench import cache, results

SAMPLES_FILE, SIDECAR_FILE = "samples.npz", "samples.json"
SIDECAR_FORMAT = "vgbench-samples/1"


def sample_seed(seed: int, index: int) -> int:
    """The seed of sample ``index`` of a run seeded with ``seed`` (independent streams via SeedSequence)."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1, np.uint64)[0] >> np.uint64(1))

def write_sidecar(out: Path, sidecar: dict, world: int, elapsed: float, tokens: int) -> tuple[Path, dict]:
    """Write ``out/samples.json`` atomically: ``sidecar`` plus the run's speed and versions; returns its path and
    the record written."""
    sidecar = {**sidecar, "world_size": world, "elapsed_s": round(elapsed, 3),
               "tokens_per_s": round(tokens * world / max(elapsed, 1e-9), 2), "versions": results.versions()}
    path = out / "samples.json"
    cache.atomic_write_bytes(path, (json.dumps(sidecar, indent=1, sort_keys=True) + "\n").encode())
    return path, sidecar


def read_sidecar(samples: str | os.PathLike) -> dict | None:
    """The ``samples.json`` written beside a ``samples.npz`` (or inside a samples folder), if there is one."""
    p = Path(samples)
    candidates = [p / "samples.json"] if p.is_dir() else [p.with_suffix(".json")]
    for c in candidates:
        if c.is_file():
            try:
                data = json.loads(c.read_text())
            except json.JSONDecodeError:
                return None
            if isinstance(data, dict) and data.get("format") == SIDECAR_FORMAT:
                return data
    return None


def sampled_folder(folder: Path) -> bool:
    """True when ``folder`` is a ``vgbench sample`` output: samples.npz beside a samples.json sidecar."""
    try:
        if not ((folder / SAMPLES_FILE).is_file() and (folder / SIDECAR_FILE).is_file()):
            return False
        return read_sidecar(folder) is not None
    except OSError:  # an unreadable folder or sidecar: the folder reader reports it through the error boundary
        return False
