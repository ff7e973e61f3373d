"""TGIF: split lists -> GIF downloads with per-URL status -> prepared store at 64x64 (datasets.md §3).

GIFs are fetched concurrently (threads; I/O bound). Every attempt appends a line to ``gifs/status.jsonl``:
``{url, split, status, http, bytes, sha256, time}`` with status ``ok``, ``dead`` (HTTP 4xx), ``not_gif`` (the
server answered with something else, e.g. a still image or an HTML page), ``error`` (network, 5xx) or
``changed`` (a re-download whose bytes differ from the recorded ones). The last line per URL wins; a re-run
retries only URLs without a usable file. Train = train + val (VideoGPT), test separate.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from vgbench import cache
from vgbench.datasets.common import RESIZE, Summary, dataset_dir, fetch_sources, store_dir
from vgbench.datasets.store import StoreWriter
from vgbench.datasets.videofiles import Item, convert
from vgbench.errors import InputError
from vgbench.readers import reading

log = logging.getLogger(__name__)

SPLIT_FILES = ("train", "val", "test")
STORE_SPLITS = {"train": ("train", "val"), "test": ("test",)}
SOURCE_LAYOUT = (
    "a folder holding {train,val,test}/**/*.gif, or a folder of GIFs named tumblr_<id>_<width>.gif as in the split "
    "lists (with the lists in splits/{train,val,test}.txt, else the downloaded ones)"
)


def read_split(path: Path) -> list[str]:
    """URLs of a split list (one per line)."""
    if not path.exists():
        raise InputError(f"split list {path} is missing; run `vgbench data download tgif` or pass --from")
    with reading(path, "a TGIF split list (one GIF URL per line)"):
        return [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]


def read_tsv(path: Path) -> list[tuple[str, str]]:
    """(gif url, sentence) rows; split on the first tab only, no header."""
    rows = []
    with reading(path, "the TGIF TSV (UTF-8 '<gif url>\\t<sentence>' rows)"):
        text = path.read_text(encoding="utf-8")
    for i, ln in enumerate(text.splitlines(), 1):
        if not ln.strip():
            continue
        url, sep, sentence = ln.partition("\t")
        if not sep:
            raise InputError(f"{path}:{i}: expected '<gif url>\\t<sentence>', found no tab")
        rows.append((url, sentence))
    return rows


def gif_name(url: str) -> str:
    """The basename (tumblr_<id>_<width>.gif): TGIF-QA's gif_name and the file name on disk."""
    return url.rstrip("/").rsplit("/", 1)[-1]


# ----------------------------------------------------------------------------------------------------------
# Downloads with per-URL status


def read_status(path: Path) -> dict[str, dict]:
    """Latest status per URL."""
    out: dict[str, dict] = {}
    if not path.exists():
        return out
    fix = f"delete {path} to check every URL again"
    with reading(path, "the GIF status log (JSON lines)", fix):
        lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    for i, ln in enumerate(lines):
        try:
            rec = json.loads(ln)
            out[rec["url"]] = rec
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            if i == len(lines) - 1:  # a line cut by a killed run: that URL is simply tried again
                log.warning("%s: ignoring an incomplete last line", path)
                continue
            raise InputError(f"{path}: line {i + 1} is not a status record ({exc}); {fix}") from exc
    return out


def _fetch_one(url: str, dest: Path, timeout: float) -> dict:
    rec = {"url": url, "http": None, "bytes": 0, "sha256": None}
    try:
        req = urllib.request.Request(url, headers={"User-Agent": "vgbench-downloader"})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            rec["http"] = resp.status
            data = resp.read()
    except urllib.error.HTTPError as exc:
        return {**rec, "http": exc.code, "status": "dead" if exc.code < 500 else "error", "reason": str(exc.reason)}
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        return {**rec, "status": "error", "reason": f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"}
    if not data.startswith((b"GIF87a", b"GIF89a")):
        return {**rec, "bytes": len(data), "status": "not_gif", "reason": f"content starts with {data[:8]!r}"}
    cache.atomic_write_bytes(dest, data)
    return {**rec, "bytes": len(data), "sha256": cache.sha256_file(dest), "status": "ok"}


def download_gifs(
    urls: dict[str, list[str]], folder: Path, workers: int = 8, timeout: float = 30.0
) -> dict[str, Counter]:
    """Fetch every URL without a usable file into ``folder``; returns {split: Counter(status)} of all URLs."""
    folder.mkdir(parents=True, exist_ok=True)
    status_path = folder / "status.jsonl"
    status = read_status(status_path)
    todo = [
        (split, u)
        for split, lst in urls.items()
        for u in lst
        if not (status.get(u, {}).get("status") in ("ok", "changed") and (folder / gif_name(u)).exists())
    ]

    def job(item):
        split, url = item
        rec = _fetch_one(url, folder / gif_name(url), timeout)
        old = status.get(url, {})
        if rec["status"] == "ok" and old.get("sha256") and old["sha256"] != rec["sha256"]:
            rec["status"], rec["previous_sha256"] = "changed", old["sha256"]
        rec.update(split=split, time=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
        cache.append_line(status_path, json.dumps(rec, sort_keys=True))  # one write per line: thread-safe enough
        return rec

    if todo:
        from tqdm import tqdm

        pool = ThreadPoolExecutor(max(1, workers))
        try:
            for rec in tqdm(pool.map(job, todo), total=len(todo), desc="tgif gifs", unit="gif", leave=False):
                status[rec["url"]] = rec
        except BaseException:
            # Ctrl-C: drop the queued URLs instead of downloading all of them first (the `with` form would wait);
            # requests in flight end within their timeout, and each writes its file atomically.
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()
    report = {split: Counter(status.get(u, {}).get("status", "missing") for u in lst) for split, lst in urls.items()}
    return report


def availability_text(report: dict[str, Counter]) -> str:
    """One line per split: usable / total and the other statuses."""
    lines = []
    for split, c in report.items():
        usable = c["ok"] + c["changed"]
        rest = ", ".join(f"{k} {v}" for k, v in sorted(c.items()) if k not in ("ok", "changed"))
        lines.append(f"  {split}: {usable} of {sum(c.values())} GIFs available" + (f" ({rest})" if rest else ""))
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------
# Prepare


def _lists(card, root, src: Path | None) -> dict[str, list[str]]:
    if src is not None and (src / "splits").is_dir():
        folder = src / "splits"
        return {s: read_split(folder / f"{s}.txt") for s in SPLIT_FILES if (folder / f"{s}.txt").exists()}
    got = fetch_sources(card, list(SPLIT_FILES), root)
    return {s: read_split(got[s]) for s in SPLIT_FILES}


def download(card, root=None, workers: int = 8) -> str:
    """Metadata (TSV, split lists) and every available GIF; returns the availability report."""
    fetch_sources(card, ["tsv"], root)
    report = download_gifs(_lists(card, root, None), dataset_dir(card.name, root) / "gifs", workers)
    return "tgif availability:\n" + availability_text(report)


def plan(src: Path, lists: dict[str, list[str]] | None) -> dict[str, list[Item]]:
    """Items per store split from a folder: either ``{train,val,test}/**/*.gif`` or GIFs named as in the lists."""
    layout = {s: src / s for s in SPLIT_FILES if (src / s).is_dir()}
    out: dict[str, list[Item]] = {}
    if layout:
        for store_split, parts in STORE_SPLITS.items():
            items = [
                Item(p.relative_to(src).as_posix(), p)
                for s in parts
                if s in layout
                for p in sorted(layout[s].rglob("*.gif"))
            ]
            if items:
                out[store_split] = items
        return out
    if not lists:
        raise InputError(f"{src}: no train/val/test folders and no split lists to map GIF names to splits")
    for store_split, parts in STORE_SPLITS.items():
        items = []
        for s in parts:
            for url in lists.get(s, []):
                p = src / gif_name(url)
                items.append(Item(gif_name(url), p if p.exists() else None))
        if items:
            out[store_split] = items
    return out


def store_split(card, split: str, resolution: int) -> tuple[str, str]:
    """(store variant, split in the store) of a card split at frame size ``resolution``: the variant is the size."""
    return str(resolution), split


def prepare(
    card, root=None, src: Path | None = None, resolution: int | None = None, workers: int = 1, force: bool = False
) -> Summary:
    """Decode the available GIFs to a store (train = train + val, test); unavailable ones are listed as failures."""
    size = resolution or card.preprocess["resolution"]
    src_path = Path(src) if src else None
    if src_path is not None and not src_path.is_dir():
        raise InputError(f"--from {src_path} is not a folder; tgif expects {SOURCE_LAYOUT}")
    availability = None
    if src_path is None:
        availability = download(card, root, workers=max(8, workers))
        gif_dir = dataset_dir(card.name, root) / "gifs"
        splits = plan(gif_dir, _lists(card, root, None))
    else:
        has_layout = any((src_path / s).is_dir() for s in SPLIT_FILES)
        splits = plan(src_path, None if has_layout else _lists(card, root, src_path))
    if src_path is not None and not any(it.path for items in splits.values() for it in items):
        raise InputError(f"{src_path}: no GIFs of the TGIF splits found; tgif expects {SOURCE_LAYOUT}")
    folder = store_dir(card.name, str(size), root)
    params = {"resolution": size, "min_frames": card.preprocess["min_frames"], "train": "train+val", "resize": RESIZE}
    gifs = src_path or dataset_dir(card.name, root) / "gifs"
    writer = StoreWriter(folder, card.name, str(size), params, {"gifs": gifs}, (size, size, 3), force)
    summary = Summary(card.name, folder)
    convert(writer, splits, size, workers, summary, per_shard=64, min_frames=card.preprocess["min_frames"])
    summary.record(writer.finish(dict(card.splits)))
    if availability:
        summary.notes.append(availability)
    return summary
