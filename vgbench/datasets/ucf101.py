"""UCF-101: archive -> videos -> prepared store of fold 1, 2, 3 or all videos (datasets.md §2).

Archives: the official ``UCF101.rar`` is unpacked with the ``rarfile`` library (the ``data`` extra), which drives
an unrar tool: ``unar`` or ``bsdtar`` (Debian packages ``unar`` / ``libarchive-tools``) or ``unrar``. The TFDS
mirror ``UCF101_videos.zip`` and the split zip are read with Python's ``zipfile``. Extraction goes to a temporary
folder renamed into place when complete, so an interrupted run starts the extraction again and never uses half of
it. Class labels come from the folder name (``classInd.txt`` order, 0-based), never the file name: the folder
``HandstandPushups`` holds ``v_HandStandPushups_*`` files. Videos are decoded with PyAV and the shorter side resized
to R (64 or 128; bilinear, half-pixel, long side ceil), all frames kept (clips are cut by the loader: 16 frames,
configurable step).

The store keeps the whole resized width (R x ceil(4R/3): 64 x 86, 128 x 171 for UCF-101's 320x240 videos) with
the R x R centre window recorded per video (a store with margins, :mod:`.store`): evaluation clips are that
centre crop, byte for byte the centre-cropped frames of the paper's preprocessing, and training can take
VideoGPT-Paper's random crop from the same store (``training.augment: random_crop_flip``). A video of another
aspect keeps its centre ceil(4R/3) columns, or is padded to them (:func:`.common.resize_short_side_band`). The
margins cost a third more disk than centre crops.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import zipfile
from pathlib import Path

from vgbench.datasets.common import RESIZE_BAND, Summary, band_width, dataset_dir, fetch_sources, store_dir
from vgbench.datasets.store import StoreWriter, describe_sources
from vgbench.datasets.videofiles import Item, convert
from vgbench.errors import InputError, MissingDependencyError
from vgbench.readers import read_json, reading

FOLDS = ("1", "2", "3", "all")
ASPECT = (4, 3)  # UCF-101 videos are 320x240: the band keeps their whole width
SOURCE_LAYOUT = (
    "UCF101.rar or UCF101_videos.zip, or a folder holding UCF-101/<Class>/*.avi (plus ucfTrainTestlist/ with "
    "classInd.txt and train/testlist0[1-3].txt; downloaded when absent)"
)


def extract(archive: Path, dest: Path) -> Path:
    """Unpack a .zip or .rar into ``dest`` (atomically: a temp folder renamed when complete); returns ``dest``.

    An earlier extraction is reused only when it came from the same archive (path and size, recorded in
    ``dest/.source.json``); otherwise it is replaced."""
    identity = describe_sources({"archive": archive})["archive"]
    marker = dest / ".source.json"
    if dest.exists():
        if marker.exists() and read_json(marker, "an extraction marker") == identity:
            return dest
        shutil.rmtree(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        suffix = archive.suffix.lower()
        if suffix == ".zip":
            try:
                with zipfile.ZipFile(archive) as zf:
                    bad = zf.testzip()
                    if bad is not None:
                        raise InputError(f"{archive}: member {bad} is corrupt; download the archive again")
                    zf.extractall(tmp)
            except zipfile.BadZipFile as exc:
                raise InputError(f"{archive}: not a complete zip archive ({exc}); download it again") from exc
        elif suffix == ".rar":
            _extract_rar(archive, tmp)
        else:
            raise InputError(f"{archive}: unsupported archive type {suffix!r}; ucf101 expects {SOURCE_LAYOUT}")
        if not any(tmp.iterdir()):
            raise InputError(f"{archive}: the archive yielded no files; it is truncated or not a {suffix} archive")
        (tmp / ".source.json").write_text(json.dumps(identity))
        tmp.rename(dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return dest


def _extract_rar(archive: Path, out: Path) -> None:
    try:
        import rarfile
    except ImportError as exc:
        raise MissingDependencyError("rarfile", "data", "unpacking UCF101.rar") from exc
    try:
        with rarfile.RarFile(archive) as rf:
            rf.extractall(out)
    except rarfile.RarCannotExec as exc:
        raise InputError(
            f"{archive}: no unrar tool found ({exc}). Install one: `apt install unar` or `apt install "
            "libarchive-tools` (bsdtar), or unpack the archive yourself and pass the folder with --from."
        ) from exc
    except (rarfile.Error, OSError) as exc:
        raise InputError(f"{archive}: cannot unpack ({type(exc).__name__}: {exc}); download it again") from exc


def read_split_lists(folder: Path) -> tuple[list[str], dict[str, dict[str, list[str]]]]:
    """(class names in classInd order, {fold: {'train': [rel paths], 'test': [...]}}) from ``ucfTrainTestlist``."""

    def lines(name: str) -> list[str]:
        path = folder / name
        if not path.exists():
            raise InputError(f"{folder}: split file {name} is missing; need classInd.txt and train/testlist0[1-3].txt")
        with reading(path, "a UCF-101 split list (text)", "take the files from the official split zip"):
            return [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]  # CRLF handled by strip

    with reading(folder / "classInd.txt", "classInd.txt (lines '<index> <ClassName>')"):
        classes = [ln.split()[1] for ln in sorted(lines("classInd.txt"), key=lambda x: int(x.split()[0]))]
    folds = {}
    for k in ("1", "2", "3"):
        folds[k] = {
            "train": [ln.split()[0] for ln in lines(f"trainlist0{k}.txt")],
            "test": [ln.split()[0] for ln in lines(f"testlist0{k}.txt")],
        }
    return classes, folds


def _find(root: Path, name: str) -> Path | None:
    return next((p for p in root.rglob(name) if p.is_dir()), None)


def locate(src: Path, card, root=None) -> tuple[Path, Path]:
    """(videos root holding <Class>/*.avi, split-list folder) from --from, the downloads, or extraction."""
    work = dataset_dir(card.name, root) / "extracted"
    if src is not None and src.is_file():
        src = extract(src, work / src.stem)
    if src is None:
        got = fetch_sources(card, ["videos"], root)
        src = extract(got["videos"], work / got["videos"].stem)
    videos = _find(src, "UCF-101") or src
    if not any(videos.glob("*/*.avi")):
        raise InputError(f"{src}: no UCF-101 videos (<Class>/*.avi) found; ucf101 expects {SOURCE_LAYOUT}")
    lists = _find(src, "ucfTrainTestlist")
    if lists is None:
        got = fetch_sources(card, ["splits"], root)
        lists = _find(extract(got["splits"], work / "splits"), "ucfTrainTestlist")
        if lists is None:
            raise InputError(f"{got['splits']}: holds no ucfTrainTestlist folder")
    return videos, lists


def plan(videos_root: Path, lists: Path, fold: str) -> dict[str, list[Item]]:
    """Items per split for ``fold`` ('1'..'3' or 'all'), labelled from the folder name."""
    if fold not in FOLDS:
        raise InputError(f"unknown UCF-101 fold {fold!r}; allowed: {', '.join(FOLDS)}")
    classes, folds = read_split_lists(lists)
    index = {c: i for i, c in enumerate(classes)}
    on_disk = {p.relative_to(videos_root).as_posix().lower(): p for p in videos_root.glob("*/*.avi")}
    if not on_disk:
        raise InputError(f"{videos_root}: no <Class>/*.avi videos found")

    def item(rel: str) -> Item:
        cls = rel.split("/")[0]
        if cls not in index:
            raise InputError(f"{lists}: class folder {cls!r} of {rel} is not in classInd.txt")
        return Item(rel, on_disk.get(rel.lower()), index[cls])

    if fold == "all":
        rels = sorted(set(folds["1"]["train"]) | set(folds["1"]["test"]))
        return {"all": [item(r) for r in rels]}
    return {s: [item(r) for r in sorted(folds[fold][s])] for s in ("train", "test")}


def store_variant(fold: str, size: int) -> str:
    """The store variant of a fold (or all videos) at frame size ``size``: ``fold1_64``, ``all_128``."""
    return f"{'all' if fold == 'all' else 'fold' + fold}_{size}"


def store_split(card, split: str, resolution: int) -> tuple[str, str]:
    """(store variant, split in the store) of a card split: ``fold1/train`` at 64 -> (``fold1_64``, ``train``)."""
    if split == "all":
        return store_variant("all", resolution), "all"
    fold, sep, part = split.partition("/")
    if not sep or not fold.startswith("fold") or fold[4:] not in FOLDS or part not in ("train", "test"):
        names = ", ".join(card.splits)
        raise InputError(f"UCF-101 split {split!r} is not one of the card's splits ({names})")
    return store_variant(fold[4:], resolution), part


def expected_counts(card, fold: str) -> dict[str, int]:
    """The card's video counts for the store splits of ``fold`` (train/test, or all)."""
    if fold == "all":
        return {"all": card.splits["all"]}
    return {s: card.splits[f"fold{fold}/{s}"] for s in ("train", "test")}


def prepare(
    card,
    root=None,
    src: Path | None = None,
    fold: str = "1",
    resolution: int | None = None,
    workers: int = 1,
    force: bool = False,
) -> Summary:
    """Decode, resize and store one fold (or all videos) at ``resolution``; resumable per shard of 16 videos."""
    size = resolution or card.preprocess["resolution"]
    fold = str(fold)
    if fold not in FOLDS:
        raise InputError(f"unknown UCF-101 fold {fold!r}; allowed: {', '.join(FOLDS)}")
    videos_root, lists = locate(Path(src) if src else None, card, root)
    splits = plan(videos_root, lists, fold)
    variant = store_variant(fold, size)
    folder = store_dir(card.name, variant, root)
    long_side = band_width(size, ASPECT)
    params = {"fold": fold, "resolution": size, "resize": RESIZE_BAND, "long_side": long_side}
    sources = {"videos": videos_root, "splits": lists}
    writer = StoreWriter(folder, card.name, variant, params, sources, (size, long_side, 3), force, (size, size))
    summary = Summary(card.name, folder)
    convert(writer, splits, size, workers, summary, long_side=long_side)
    summary.record(writer.finish(expected_counts(card, fold)))
    missing = sum(1 for items in splits.values() for it in items if it.path is None)
    if missing:
        summary.notes.append(f"{missing} videos listed in the split files are missing from {videos_root}")
    return summary
