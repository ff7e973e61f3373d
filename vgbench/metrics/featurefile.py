"""``--save-features FILE``: the per-video contributions of a record, so anyone can recompute its value, interval
and FD∞ with their own code, and ``vgbench compare --features`` can compare two records later.

Layout (``.npz``, no pickled objects; read it with ``np.load(path, allow_pickle=False)``):

- ``format``: ``vgbench-features/1``; ``kind``: ``frechet``, ``inception`` or ``ratio``;
- ``record``: the result record as a JSON string (metric, protocol, value, interval, provenance of every input);
- ``params``: JSON string of what the value needs besides the arrays (IS: splits, eps, shuffle_seed; ratio: scale);
- per array NAME of the kind, ``NAME`` (all trials concatenated) and ``NAME_trial_sizes`` (int64, one per trial):
  ``frechet``: ``samples`` (N, 400) and ``reference`` (M, 400) float64 I3D features;
  ``inception``: ``probs`` (N, 101) float64 class probabilities;
  ``ratio``: ``num`` and ``den`` (N,) float64, value = scale * sum(num) / sum(den) (NMSE: squared-error sums and
  value counts per clip, scale 1 / variance; bits/dim: NLL sums in nats and token counts, scale 1 / ln 2;
  PSNR, SSIM: per-clip scores and ones).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from vgbench import cache
from vgbench.errors import InputError
from vgbench.metrics.uncertainty import Contributions
from vgbench.readers import reading

FORMAT = "vgbench-features/1"
ARRAYS = {"frechet": ("samples", "reference"), "inception": ("probs",), "ratio": ("num", "den")}


def write(path: str | Path, contrib: Contributions, record: dict) -> None:
    """Write ``contrib`` and the record's JSON to ``path`` (atomically)."""
    arrays = {
        "format": np.array(FORMAT),
        "kind": np.array(contrib.kind),
        "record": np.array(json.dumps(record, sort_keys=True)),
        "params": np.array(json.dumps(contrib.params, sort_keys=True)),
    }
    for name in ARRAYS[contrib.kind]:
        parts = [np.asarray(t[name], dtype=np.float64) for t in contrib.trials]
        arrays[name] = np.concatenate(parts)
        arrays[f"{name}_trial_sizes"] = np.array([len(x) for x in parts], np.int64)
    with cache.atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


def load(path: str | Path) -> tuple[Contributions, dict]:
    """(contributions, record) of a features file; any other layout is one error naming what is wrong."""
    what, fix = "a vgbench features file (--save-features)", "write it again with vgbench eval --save-features"
    path = Path(path)
    with reading(path, what, fix):
        with open(path, "rb") as f:  # numpy reads a non-zip file as a pickle and would say so: name the real problem
            if f.read(2) != b"PK":
                raise InputError(f"{path}: not a .npz archive ({path.stat().st_size} bytes; damaged, truncated or "
                                 f"another format); {fix}")  # fmt: skip
        try:
            with np.load(path, allow_pickle=False) as z:
                files = set(z.files)
                if "format" not in files or str(z["format"]) != FORMAT:
                    seen = str(z["format"]) if "format" in files else "no format entry"
                    raise InputError(f"{path}: not a vgbench features file ({seen}; expected {FORMAT}); {fix}")
                kind = str(z["kind"]) if "kind" in files else ""
                if kind not in ARRAYS:
                    raise InputError(f"{path}: features of kind {kind!r}; allowed: {', '.join(ARRAYS)}; {fix}")
                need = {"record", "params"} | {n for a in ARRAYS[kind] for n in (a, f"{a}_trial_sizes")}
                missing = sorted(need - files)
                if missing:
                    raise InputError(f"{path}: a {kind} features file without {', '.join(missing)}; {fix}")
                record, params = json.loads(str(z["record"])), json.loads(str(z["params"]))
                data = {a: (z[a], z[f"{a}_trial_sizes"]) for a in ARRAYS[kind]}
        except (zipfile.BadZipFile, EOFError, json.JSONDecodeError) as exc:
            raise InputError(f"{path}: cannot be read as {what} ({exc}); {fix}") from exc
    trials: list[dict] = []
    for name, (arr, sizes) in data.items():
        if sizes.ndim != 1 or len(sizes) < 1 or (sizes < 1).any() or int(sizes.sum()) != len(arr):
            raise InputError(
                f"{path}: damaged features file: {name} has {len(arr)} rows but {name}_trial_sizes {sizes.tolist()}; "
                f"{fix}"
            )
        if kind == "frechet" and (arr.ndim != 2 or arr.shape[1] < 1):
            raise InputError(f"{path}: {name} of shape {arr.shape}; expected (N, D) features; {fix}")
        parts = np.split(arr.astype(np.float64), np.cumsum(sizes)[:-1])
        if not trials:
            trials = [{} for _ in parts]
        if len(parts) != len(trials):
            raise InputError(f"{path}: arrays of {len(trials)} and {len(parts)} trials; {fix}")
        for t, part in zip(trials, parts, strict=True):
            t[name] = part
    if not isinstance(record, dict) or "value" not in record:
        raise InputError(f"{path}: its record is not a vgbench result (no value); {fix}")
    return Contributions(kind, trials, params, bool(record.get("higher_is_better", False))), record
