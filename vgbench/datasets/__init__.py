"""Datasets of the paper: download, verify, prepare to one store format, load (see each module's docstring).

Entry points (the CLI's ``vgbench data download|prepare|info`` call exactly these): :func:`download`,
:func:`prepare`, :func:`info`, :func:`open_split` (a prepared split as a torch Dataset), and :func:`parse_ref`
for ``NAME[/VARIANT]:SPLIT`` references such as ``bair:test``.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from vgbench import cards
from vgbench.datasets.common import Summary, dataset_dir, fetch_sources, store_dir
from vgbench.datasets.store import Store
from vgbench.errors import InputError
from vgbench.registry import bind_options

REF = re.compile(r"^(?P<name>[a-z0-9_]+)(/(?P<variant>[A-Za-z0-9_]+))?:(?P<split>[a-z0-9_/]+)$")


def _preparer(card: cards.DatasetCard):
    from vgbench.registry import DATASET_PREPARERS

    return DATASET_PREPARERS.get(card.prepare)


def download(name: str, root=None, **options) -> str:
    """Download and verify dataset ``name``'s files: its module's own ``download`` where it has one (TGIF: the
    GIFs behind the lists), else every source the card does not mark optional. Returns a short report."""
    card = cards.dataset(name)
    own = getattr(importlib.import_module(_preparer(card).__module__), "download", None)
    if own is not None:
        return own(card, root, **bind_options(own, options, f"downloading {name}"))
    bind_options(lambda: None, options, f"downloading {name}")  # takes no options: refuses any given
    got = fetch_sources(card, [k for k, s in card.sources.items() if s.url and not s.optional], root)
    return "\n".join(f"{k}: {p} ({p.stat().st_size} bytes, verified)" for k, p in got.items())


def prepare(name: str, root=None, src: str | Path | None = None, **options) -> Summary:
    """Download if needed, then preprocess dataset ``name`` into its store (resumable)."""
    card = cards.dataset(name)
    if src is not None and not Path(src).exists():
        raise InputError(f"--from {src}: no such file or directory")
    fn = _preparer(card)
    return fn(card, root=root, src=Path(src) if src else None, **bind_options(fn, options, f"dataset {name}"))


def variants(name: str, root=None) -> list[str]:
    """Prepared variants of dataset ``name`` under the data root."""
    folder = dataset_dir(name, root) / "prepared"
    return sorted(p.name for p in folder.iterdir() if (p / "manifest.json").exists()) if folder.is_dir() else []


def open_store(name: str, variant: str | None = None, root=None) -> Store:
    """The prepared store of ``name`` (the card's default variant, else the only one prepared)."""
    card = cards.dataset(name)
    have = variants(name, root)
    variant = variant or (card.preprocess.get("variant") if card.preprocess.get("variant") in have else None)
    if variant is None and len(have) == 1:
        variant = have[0]
    if variant is None or variant not in have:
        raise InputError(
            f"dataset {name}: variant {variant or card.preprocess.get('variant')!r} is not prepared under "
            f"{dataset_dir(name, root) / 'prepared'} (prepared: {', '.join(have) or 'none'}). "
            f"Run `vgbench data prepare {name}`."
        )
    return Store(store_dir(name, variant, root))


def info(name: str, variant: str | None = None, root=None) -> dict:
    """Counts, shapes, disk size, failures and manifest of a prepared store, plus the card's expected counts."""
    card = cards.dataset(name)
    out = open_store(name, variant, root).info()
    out["card_splits"] = dict(card.splits)
    return out


def parse_ref(ref: str) -> tuple[str, str | None, str] | None:
    """``bair:test`` -> ('bair', None, 'test'); None when ``ref`` is not of the form NAME[/VARIANT]:SPLIT."""
    m = REF.match(str(ref))
    if not m or m["name"] not in cards.names("datasets"):
        return None
    return m["name"], m["variant"], m["split"]


def open_split(ref: str, clip_len: int = 16, seed: int = 0, root=None, **kw):
    """An evaluation view of ``NAME[/VARIANT]:SPLIT``: one deterministic window per video, uint8 THWC, RGB."""
    from vgbench.datasets.loader import ClipDataset

    parsed = parse_ref(ref)
    if parsed is None:
        raise InputError(
            f"{ref!r} is not a dataset reference NAME[/VARIANT]:SPLIT (datasets: {cards.names('datasets')})"
        )
    name, variant, split = parsed
    store = open_store(name, variant, root)
    kw = {"windows": "fixed", "output": "uint8_thwc", "channels": 3, **kw}
    return ClipDataset(store, split, clip_len=clip_len, seed=seed, **kw)
