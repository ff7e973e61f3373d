"""Result records: one JSON object per evaluation, printed and appended to a JSONL store.

``read`` gives a store as a pandas DataFrame (one row per record, protocol parameters flattened into
``protocol_params.<name>`` columns); ``read_records`` gives the plain dicts.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vgbench import cache


def default_store(root=None) -> Path:
    """The default results store: ``<cache>/results/results.jsonl`` (``VGBENCH_RESULTS`` overrides)."""
    if os.environ.get("VGBENCH_RESULTS"):
        return Path(os.environ["VGBENCH_RESULTS"]).expanduser()
    return cache.cache_dir("results", root) / "results.jsonl"


@dataclass
class Result:
    """Everything needed to trust and compare one number."""

    metric: str
    protocol: str
    protocol_hash: str
    protocol_params: dict
    card_version: int
    value: float
    std: float | None
    trial_values: list[float]
    n_samples: int
    n_reference: int
    higher_is_better: bool
    samples: dict
    reference: dict
    extractor: dict
    backend: str
    device: str
    batch_size: int
    seed: int
    off_protocol: bool = False
    notes: list[str] = field(default_factory=list)
    protocol_overrides: dict = field(default_factory=dict)  # --set key -> [protocol value, value used]
    checkpoint: dict = field(default_factory=dict)  # the checkpoint read, for metrics that read one
    label: str = ""  # how to name the value where the metric's name misleads (bits/dim per latent token)
    run: str = ""
    dataset: str = ""
    # {low, high, level, method, resamples, seed}: bootstrap over the evaluated videos (vgbench.metrics.uncertainty);
    # its settings never change the value, so they are recorded here, beside the protocol hash, not inside it
    interval: dict = field(default_factory=dict)
    curve: dict = field(default_factory=dict)  # FVD family and IS: the sample-count curve, value at N -> inf (FD∞)
    world_size: int = 1
    elapsed_s: float = 0.0
    vgbench_version: str = ""
    torch_version: str = ""
    python_version: str = field(default_factory=platform.python_version)
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))

    def __post_init__(self):
        if not self.vgbench_version:
            from vgbench import __version__

            self.vgbench_version = __version__

    @property
    def key(self) -> str:
        """``metric.protocol``, the name a leaderboard matches on."""
        return f"{self.metric}.{self.protocol}"

    def to_json(self) -> str:
        """One line of JSON."""
        return json.dumps(asdict(self), sort_keys=True)


def append(result: Result, store: str | os.PathLike) -> None:
    """Append a result to a JSONL store (created if missing)."""
    cache.append_line(store, result.to_json())


RECORD_KEYS = ("metric", "protocol", "value")  # what every record has, and tables and checks read


def read_records(store: str | os.PathLike, must_exist: bool = False) -> list[dict]:
    """All records of a JSONL store as dicts.

    A missing store holds no records, unless ``must_exist`` (a store named on the command line, or one a check
    reads): then it is an error saying so. An unreadable file, a line that is not JSON, or a record without
    ``metric``, ``protocol`` and a numeric ``value`` is an :class:`InputError` naming the file and the line."""
    from vgbench.errors import InputError
    from vgbench.readers import reading

    path = Path(store)
    if not path.exists():
        if must_exist:
            raise InputError(
                f"{path}: no such results store; `vgbench eval` appends its records there (--results to choose the "
                "file), so run it first or name the store that holds them"
            )
        return []
    what = "a results store (one JSON record per line, as `vgbench eval` writes)"
    with reading(path, what):
        text = path.read_text(encoding="utf-8")
    out = []
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{i}: not a JSON record ({exc}); expected {what}") from exc
        missing = [k for k in RECORD_KEYS if k not in rec] if isinstance(rec, dict) else list(RECORD_KEYS)
        if missing:
            raise InputError(f"{path}:{i}: not a vgbench result record (no {', '.join(missing)}); expected {what}")
        if isinstance(rec["value"], bool) or not isinstance(rec["value"], int | float):
            raise InputError(f"{path}:{i}: the record's value {rec['value']!r} is not a number; expected {what}")
        out.append(rec)
    return out


def to_frame(records: list[dict]):
    """Records as a pandas DataFrame: one row per record, nested fields flattened with dots
    (``protocol_params.resize``, ``samples.path``, ``extractor.name``); lists such as ``trial_values`` stay lists."""
    import pandas as pd

    return pd.json_normalize(records, sep=".") if records else pd.DataFrame()


def read(store: str | os.PathLike):
    """A results store as a pandas DataFrame (see :func:`to_frame`), for analysis in notebooks and for tables."""
    return to_frame(read_records(store))


def versions() -> dict:
    """Library versions recorded with every checkpoint, run and sample set."""
    import torch

    from vgbench import __version__

    return {"vgbench": __version__, "torch": str(torch.__version__), "python": platform.python_version()}
