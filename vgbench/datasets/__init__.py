"""Datasets of the paper: download, verify, prepare to one store format, load (see each module's docstring).

Entry points (the CLI's ``vgbench data download|prepare|info`` call exactly these): :func:`download`,
:func:`prepare` (with :func:`source_layouts` for what ``--from`` accepts), :func:`info` and :func:`format_info`,
:func:`open_split` (a prepared split as a torch Dataset), :func:`parse_ref` for ``NAME[/VARIANT]:SPLIT``
references such as ``bair:test``, and :func:`store_split` (the store variant and split holding a card's split at a
resolution, e.g. UCF-101 ``fold1/train`` at 64 -> ``fold1_64``, ``train``).
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from vgbench import cards
from vgbench import download as _download
from vgbench.datasets.common import Summary, dataset_dir, downloads_dir, fetch_sources, store_dir
from vgbench.datasets.store import Store, sources_text
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


def prepare(name: str, root=None, src: str | Path | None = None, force: bool = False, **options) -> Summary:
    """Download if needed, then preprocess dataset ``name`` into its store (resumable).

    ``src`` (``--from``) is an archive or folder of the layout :func:`source_layouts` gives; ``force`` replaces a
    store made from another source or with other parameters instead of refusing it."""
    card = cards.dataset(name)
    fn = _preparer(card)
    kwargs = bind_options(fn, options, f"dataset {name}")  # a wrong option fails before any file is touched
    if src is not None and not Path(src).exists():
        raise InputError(f"--from {src}: no such file or directory; {name} expects {source_layouts()[name]}")
    return fn(card, root=root, src=Path(src) if src else None, force=force, **kwargs)


def source_layouts() -> dict[str, str]:
    """What ``--from`` accepts, per dataset (each preparer module's ``SOURCE_LAYOUT``)."""
    out = {}
    for name in cards.names("datasets"):
        module = importlib.import_module(_preparer(cards.dataset(name)).__module__)
        out[name] = module.SOURCE_LAYOUT
    return out


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
            + (
                " A `vgbench quickstart --out DIR` run keeps its own copy: set VGBENCH_DATA=DIR/data to read it."
                if name == "quickstart"
                else ""
            )  # fmt: skip
        )
    return Store(store_dir(name, variant, root))


def store_split(name: str, split: str, resolution: int | None = None) -> tuple[str | None, str]:
    """(store variant, split in the store) holding split ``split`` of dataset ``name`` at frame size
    ``resolution``, for datasets whose variants differ by fold or size (UCF-101 ``fold1/train`` at 64 ->
    ``fold1_64``, ``train``; TGIF ``train`` at 64 -> ``64``, ``train``); other datasets: (None, ``split``), the
    card's default variant. Each dataset module may define ``store_split(card, split, resolution)``."""
    card = cards.dataset(name)
    own = getattr(importlib.import_module(_preparer(card).__module__), "store_split", None)
    if own is None:
        return None, split
    return own(card, split, resolution or card.preprocess.get("resolution"))


def info(name: str, variant: str | None = None, root=None) -> dict:
    """What is known about dataset ``name``: its card (sources with sizes and checksums, splits), and, once
    prepared, the store's counts, shapes, disk size, failures and manifest (``store`` is None before)."""
    card = cards.dataset(name)
    out = {
        "dataset": name,
        "description": " ".join(card.description.split()),
        "license": card.license,
        "card_splits": dict(card.splits),
        "sources": {
            k: {"file": s.file, "url": s.url, "bytes": s.bytes, "sha256": s.sha256, "optional": s.optional}
            for k, s in card.sources.items()
        },
        "prepared": variants(name, root),
        "variant": None,
        "store": None,
        "prepare_command": f"vgbench data prepare {name}",
    }
    pins = _download.read_lock(downloads_dir(name, root))
    for s in out["sources"].values():
        pin = pins.get(s["file"])
        s["pinned_sha256"] = pin.get("sha256") if pin and not s["sha256"] else None
    have = out["prepared"]
    default = card.preprocess.get("variant")
    out["variant"] = variant or (default if default in have else (have[0] if have else None))
    if out["variant"] in have:
        out["store"] = open_store(name, out["variant"], root).info()
    return out


def format_info(info: dict) -> str:
    """:func:`info` as text for people (the CLI prints this)."""
    name = info["dataset"]
    lines = [f"{name}: {info['description']}", f"  license: {info['license']}"]
    lines.append("  sources:" if info["sources"] else "  sources: none to download")
    for key, s in info["sources"].items():
        size = f"{s['bytes']:,} bytes" if s["bytes"] else "size not published"
        digest = (
            f"sha256 {s['sha256']}"
            if s["sha256"]
            else (
                f"sha256 {s['pinned_sha256']} (pinned at the first download; none published)"
                if s["pinned_sha256"]
                else "no published checksum (pinned on first download)"
            )
        )
        where = s["url"] or "manual download"
        lines.append(f"    {key}: {s['file']} ({size}; {digest}){' [optional]' if s['optional'] else ''}")
        lines.append(f"      {where}")
    lines.append("  card splits: " + ", ".join(f"{k} {v:,}" for k, v in info["card_splits"].items()))
    store = info["store"]
    if store is None:
        what = f"variant {info['variant']!r} " if info["variant"] else ""
        prepared = f" (prepared: {', '.join(info['prepared'])})" if info["prepared"] else ""
        lines.append(
            f"  {what}not prepared yet{prepared}: run `{info['prepare_command']}` "
            "(`vgbench data prepare --help` lists --from layouts and options)"
        )
        return "\n".join(lines)
    m = store["manifest"]
    lines.append(f"  prepared variants: {', '.join(info['prepared'])} (showing {info['variant']}; --variant to choose)")
    lines.append(f"  store {store['folder']} ({store['disk_bytes'] / 2**20:.1f} MiB), variant {m.get('variant')}")
    if m.get("crop_size"):
        h, w = m["crop_size"]
        lines.append(
            f"  clips: {h}x{w} windows of the frames (centre window for evaluation; anywhere in the picture for "
            "training with augment random_crop_flip)"
        )
    expected = m.get("expected") or {}
    for split, s in store["splits"].items():
        exp = expected.get(split)
        of = f" of the card's {exp:,}" if exp is not None else ""
        lines.append(
            f"    {split}: {s['videos']:,} videos{of}, {s['frames']:,} frames of {tuple(s['frame_shape'])}, "
            f"length {s['length_min']}..{s['length_max']}"
        )
    if "finished" not in m:
        lines.append(f"  state: unfinished (a run stopped before the end); run `{info['prepare_command']}` to resume")
    elif m.get("complete"):
        lines.append("  complete: every split holds the card's count")
    else:
        missing = m.get("missing") or {}
        detail = ", ".join(f"{k} {v:,}" for k, v in missing.items())
        lines.append(f"  INCOMPLETE against the card: {sum(missing.values()):,} videos missing ({detail})")
    if store["failures"]:
        kinds = ", ".join(f"{k} {v:,}" for k, v in store["failure_kinds"].items())
        lines.append(f"  failures: {store['failures']:,} videos could not be used ({kinds}), for example:")
        lines += [f"    {f['split']}/{f['name']}: {f['reason']}" for f in store["failure_examples"]]
        report = Path(store["folder"]) / "failures.jsonl"
        if report.exists():
            lines.append(f"    all of them: {report}")
    else:
        lines.append("  failures: none")
    lines.append(f"  from: {sources_text(m.get('sources'))}")
    lines.append(f"  params: {m.get('params')}, vgbench {m.get('vgbench_version')}")
    return "\n".join(lines)


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
