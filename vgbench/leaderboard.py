"""Published tables (``leaderboards/``) plus measured rows from a results store, rendered as md/latex/csv/html.

Rendering goes through pandas: each table becomes a DataFrame of the printed cells (:func:`display_frame`) and
pandas' writers lay it out (``to_csv``; ``Styler.to_latex`` and ``Styler.to_html``, with the best values marked by
the Styler). Markdown is written here: pandas delegates it to ``tabulate``, which pads cells and is not a
dependency.

A measured value whose protocol differs from the column's (or whose protocol parameters changed since) is marked
with a dagger and footnoted, and it is never ranked beside the published numbers. Every format shows the footnotes:
Markdown and HTML as a list after the table, LaTeX as notes set below the tabular inside the table float (printed,
not ``%`` comments), CSV as rows of kind ``footnote`` after the data rows (the text in the first column).
"""

from __future__ import annotations

import csv
import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pandas as pd

from vgbench import cards
from vgbench.errors import CardError, UnknownNameError
from vgbench.registry import did_you_mean

FORMATS = ("md", "latex", "csv", "html")
CSV_FIELDS = ["row", "label", "metric", "value", "std", "bold", "source", "notes"]
ARROWS = {"down": "↓", "up": "↑"}
DAGGER = "†"


@dataclass(frozen=True)
class Column:
    """One metric column of a table."""

    metric: str
    header: str
    direction: Literal["down", "up"]  # lower or higher is better (checked against the metric card)
    protocol: str  # metric.protocol the published numbers were made with
    show_direction: bool = True

    @property
    def title(self) -> str:
        """Header text as the paper prints it."""
        return f"{self.header} ({ARROWS[self.direction]})" if self.show_direction else self.header


@dataclass(frozen=True)
class TableSpec:
    """One table of ``tables.yaml``: its layout and the protocol of each column."""

    title: str
    dataset: str
    row_header: str
    columns: tuple[Column, ...]
    footnotes: tuple[str, ...] = ()


@dataclass(frozen=True)
class TablesCard:
    """``leaderboards/tables.yaml``: the paper's tables, validated like every card."""

    card_version: int
    name: str
    paper: str
    tables: dict[str, TableSpec]


@dataclass
class Cell:
    """A value as printed ('103.6'), its ± text and flags."""

    value: str
    std: str = ""
    best: bool = False
    off_protocol: bool = False

    def text(self, pm: str = " ± ") -> str:
        """Value with its ± where given, and the off-protocol marker."""
        return self.value + (f"{pm}{self.std}" if self.std else "") + (DAGGER if self.off_protocol else "")


@dataclass
class Row:
    """One table row: a label and a cell per column metric."""

    label: str
    cells: dict[str, Cell]
    measured: bool = False
    notes: str = ""


@dataclass
class Table:
    """A table with its published rows; measured rows are added by :func:`with_results`."""

    number: str
    title: str
    dataset: str
    row_header: str
    columns: list[Column]
    rows: list[Row]
    footnotes: list[str] = field(default_factory=list)


def leaderboard_dir() -> Path:
    """The folder holding tables.yaml and the CSVs (package copy first, then the checkout)."""
    for root in cards.card_roots():
        if (root / "leaderboards" / "tables.yaml").is_file():
            return root / "leaderboards"
    raise CardError("leaderboards/tables.yaml", "<file>", "not found in any card root")


def load_tables_card() -> TablesCard:
    """``tables.yaml`` parsed by the card machinery; every column's protocol must resolve to a metric card whose
    direction it states."""
    path = leaderboard_dir() / "tables.yaml"
    card = cards.load_as(TablesCard, path)
    for number, spec in card.tables.items():
        if not spec.columns:
            raise CardError(path, f"tables.{number}.columns", "a table needs at least one column")
        for i, col in enumerate(spec.columns):
            where = f"tables.{number}.columns[{i}]"
            try:
                metric, _, _ = cards.resolve_protocol(col.protocol)
            except UnknownNameError as exc:
                raise CardError(path, f"{where}.protocol", f"resolves to no metric protocol ({exc})") from exc
            if metric.name != col.metric:
                raise CardError(path, f"{where}.metric", "differs from the protocol's metric", metric.name, col.metric)
            if metric.label and col.header != metric.label:  # e.g. bits/dim is per latent token, and says so
                raise CardError(path, f"{where}.header", f"metric {metric.name} is labelled", metric.label, col.header)
            if (col.direction == "up") != metric.higher_is_better:
                want = "up" if metric.higher_is_better else "down"
                raise CardError(
                    path, f"{where}.direction", f"contradicts metric card {metric.name}", want, col.direction
                )
    return card


def load_tables() -> dict[str, Table]:
    """All published tables, validated (columns, metrics, numeric values)."""
    folder = leaderboard_dir()
    tables = {}
    for number, spec in load_tables_card().tables.items():
        rows = _read_rows(folder / f"table{number}.csv", {c.metric for c in spec.columns})
        tables[number] = Table(
            number,
            " ".join(spec.title.split()),
            spec.dataset,
            spec.row_header,
            list(spec.columns),
            rows,
            list(spec.footnotes),
        )
    return tables


def _read_rows(path: Path, metrics: set[str]) -> list[Row]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames != CSV_FIELDS:
            raise CardError(path, "<header>", "wrong columns", str(CSV_FIELDS), reader.fieldnames)
        rows: dict[int, Row] = {}
        for line, rec in enumerate(reader, 2):
            if rec["metric"] not in metrics:
                raise CardError(
                    path, f"line {line}.metric", "not a column of this table", str(sorted(metrics)), rec["metric"]
                )
            for key in ("value", "std"):
                if rec[key]:
                    try:
                        float(rec[key])
                    except ValueError as exc:
                        raise CardError(path, f"line {line}.{key}", "not a number", got=rec[key]) from exc
            row = rows.setdefault(int(rec["row"]), Row(rec["label"], {}, notes=rec["notes"]))
            row.cells[rec["metric"]] = Cell(rec["value"], rec["std"])
    return [rows[k] for k in sorted(rows)]


def get_table(number: str) -> Table:
    """Table ``number`` ('1'..'7')."""
    tables = load_tables()
    if str(number) not in tables:
        raise UnknownNameError(did_you_mean("table", str(number), tables))
    return tables[str(number)]


# ----------------------------------------------------------------------------------------------------------
# Measured rows


def _decimals(x: float) -> int:
    """Decimals as the paper prints such a value: 103.6, 2.05, 0.0033."""
    return 1 if abs(x) >= 10 else 2 if abs(x) >= 1 else 4


def _fmt(x: float, decimals: int) -> str:
    return f"{x:.{decimals}f}"


def _plain(row: pd.Series) -> dict:
    """A results-frame row as a record dict; missing fields (NaN in the frame) become None."""
    return {k: (None if not isinstance(v, list | dict) and pd.isna(v) else v) for k, v in row.items()}


def card_rows(card: cards.ModelCard) -> list[tuple[str, str]]:
    """The paper rows a model card stands behind: its ``tables`` entries ("4: 16") as (table number, row label)."""
    out = []
    for entry in card.tables:
        number, sep, label = entry.partition(":")
        if not sep or not number.strip() or not label.strip():
            raise CardError(f"card {card.name}", "tables", "an entry is 'TABLE: ROW LABEL'", "'4: 16'", entry)
        out.append((number.strip(), label.strip()))
    return out


# Metrics of the VQ-VAE alone: placed by the VQ-VAE's card even when a prior checkpoint (holding it) was read.
VQVAE_METRICS = ("nmse", "r-fvd", "psnr", "ssim")
_SKIP = object()  # a record that has no place in a table


def record_card(r: dict) -> str | None:
    """The model card a record measures (flattened record keys): the VQ-VAE's for its own metrics; for FVD* and
    FVD the prior that generated the samples (``samples.generated_by``, the ``vgbench sample`` sidecar) when
    known; else the checkpoint read."""
    if r["metric"] in VQVAE_METRICS:
        return r.get("checkpoint.vqvae_card") or r.get("checkpoint.card")
    return r.get("samples.generated_by.card") or r.get("checkpoint.card")


def _dataset_name(ref) -> str:
    """``bair/main:test`` -> ``bair``; '' for anything that is not a dataset reference."""
    if not isinstance(ref, str) or ":" not in ref:
        return ""
    return ref.split(":", 1)[0].split("/", 1)[0]


def record_dataset(r: dict) -> str:
    """The dataset a record was measured on: ``--dataset``, else the dataset split its reference clips came from
    (directly, through the sets a checkpoint made from them, or the samples' conditioning); '' when unknown."""
    if r.get("dataset"):
        return r["dataset"]
    sources = [
        r.get("reference.dataset"),
        r.get("reference.made_from_checkpoint.reference.dataset"),
        r.get("samples.made_from_checkpoint.reference.dataset"),
        r.get("samples.generated_by.conditioning.dataset"),
    ]
    for made in (r.get("reference.made_from_checkpoint.reference"), r.get("samples.made_from_checkpoint.reference")):
        if isinstance(made, list):  # per-trial windows of FVD with --checkpoint
            sources += [m.get("dataset") for m in made if isinstance(m, dict)]
    return next((name for name in map(_dataset_name, sources) if name), "")


def _placement(r: dict, table: Table, path_rows: set[str]):
    """Where a record goes in ``table``: the published row label its model card stands behind, None for a run
    row after the published ones (no card mapping; shown when the dataset matches), or ``_SKIP``."""
    name = record_card(r)
    card = None
    if name:
        try:
            card = cards.model(name)
        except UnknownNameError:
            card = None  # a card not on this machine's card path: placed by dataset, as records without one
    if card is not None and card.tables:
        labels = [label for number, label in card_rows(card) if number == table.number]
        if not labels:
            return _SKIP  # the configuration stands behind no row of this table
        if labels[0] not in path_rows:
            raise CardError(
                f"card {card.name}", "tables", f"names no published row of Table {table.number}",
                str(sorted(path_rows)), labels[0],
            )  # fmt: skip
        return labels[0]
    return None if record_dataset(r) == table.dataset else _SKIP


def _placement_problems(r: dict, table: Table) -> list[str]:
    """Why a record placed beside a published row does not reproduce it: another dataset, or a checkpoint whose
    configuration was changed from its card's."""
    out = []
    dataset = record_dataset(r)
    if not dataset:
        out.append(f"dataset not recorded (the row is on {table.dataset}; pass --dataset {table.dataset})")
    elif dataset != table.dataset:
        out.append(f"measured on {dataset}, the row on {table.dataset}")
    # the `--set` changes a checkpoint was trained with (a list stays one column; a mapping is flattened)
    changes = [
        f"{k.removeprefix('checkpoint.overrides.')}={v}"
        if k != "checkpoint.overrides"
        else (v if isinstance(v, str) else ", ".join(map(str, v)))
        for k, v in r.items()
        if (k == "checkpoint.overrides" or k.startswith("checkpoint.overrides.")) and v not in (None, [], {}, "")
    ]
    if changes:
        out.append(f"the checkpoint was trained with changes to its card ({'; '.join(changes)})")
    return out


def with_results(table: Table, results: pd.DataFrame | list[dict]) -> Table:
    """Add the measured rows of ``results`` (a results frame, or records) to the table, then mark the best
    comparable values.

    A record made from a checkpoint (or from samples whose ``vgbench sample`` sidecar names one) whose model card
    lists the paper rows it stands behind (``tables: ["4: 16"]``) goes beside that published row, labelled
    "ROW — vgbench, RUN"; there it is marked † when measured on another dataset or with a changed configuration.
    Other records of the table's dataset make one row per run after the published rows. Within a row, a run's
    latest record of each metric wins."""
    from vgbench import results as results_mod

    frame = results if isinstance(results, pd.DataFrame) else results_mod.to_frame(results)
    notes: list[str] = []
    columns = {c.metric: c for c in table.columns}
    published = {r.label for r in table.rows}
    groups: dict[tuple[str | None, str], dict[str, dict]] = {}  # (published row or None, run) -> metric -> record
    if not frame.empty and "metric" in frame:
        for _, row in frame[frame["metric"].isin(list(columns))].iterrows():
            r = _plain(row)
            slot = _placement(r, table, published)
            if slot is not _SKIP:
                groups.setdefault((slot, r.get("run") or "unnamed run"), {})[r["metric"]] = r
    for (slot, run), records in groups.items():
        cells = {}
        for metric in [c.metric for c in table.columns if c.metric in records]:
            r, col = records[metric], columns[metric]
            extra = _placement_problems(r, table) if slot is not None else []
            cells[metric], why = _measured_cell(r, col, extra)
            if why:
                notes.append(f"{DAGGER} {run}, {col.header}: {why}. Not ranked.")
        if slot is None:
            table.rows.append(Row(f"VideoGPT — vgbench, {run}", cells, measured=True))
            continue
        at = next(i for i, row in enumerate(table.rows) if not row.measured and row.label == slot) + 1
        while at < len(table.rows) and table.rows[at].measured:  # after the row's earlier measured runs
            at += 1
        table.rows.insert(at, Row(f"{slot} — vgbench, {run}", cells, measured=True))
    if any(interval_half_width(r) is not None for recs in groups.values() for r in recs.values()):
        notes.append(INTERVAL_FOOTNOTE)
    table.footnotes = table.footnotes + notes
    mark_best(table)
    return table


def _measured_cell(r: dict, col: Column, problems: list[str] | None = None) -> tuple[Cell, str]:
    """The cell of one record in column ``col``, and why it is not comparable ("" when it is): another protocol,
    an off-protocol run, changed protocol parameters, or the placement ``problems``."""
    key = f"{r['metric']}.{r['protocol']}"
    current = _current_hash(r)
    changed = current is not None and current != r.get("protocol_hash")
    whys = []
    if key != col.protocol or r.get("off_protocol") or changed:
        whys.append(
            f"measured under {key}"
            + (" (off-protocol run)" if r.get("off_protocol") else "")
            + (" with protocol parameters that have changed since" if changed else "")
            + f"; the published numbers use {col.protocol}"
        )
    whys += problems or []
    std, dec = r.get("std"), _decimals(r["value"])
    half = interval_half_width(r)
    pm = _fmt(half, dec) if half is not None else (_fmt(std, dec) if std else "")
    return Cell(_fmt(r["value"], dec), pm, off_protocol=bool(whys)), "; ".join(whys)


def interval_half_width(r: dict) -> float | None:
    """Half the width of a record's interval (a record dict, or a flattened results-frame row), None without one."""
    iv = r.get("interval")
    lo, hi = (
        (iv.get("low"), iv.get("high")) if isinstance(iv, dict) else (r.get("interval.low"), r.get("interval.high"))
    )
    if lo is None or hi is None:
        return None
    return (float(hi) - float(lo)) / 2


INTERVAL_FOOTNOTE = (
    "± on vgbench rows: half the width of the record's 95 % bootstrap interval over the evaluated clips (not over "
    "training runs); the std over trials where a record has no interval."
)


def _current_hash(record: dict) -> str | None:
    try:
        card, tag, p = cards.resolve_protocol(record["metric"], record["protocol"])
    except (UnknownNameError, KeyError):
        return None
    return cards.protocol_hash(card.name, tag, p, card.card_version)


def mark_best(table: Table) -> None:
    """Mark the best value of each column among published and same-protocol measured cells (ties all marked)."""
    for col in table.columns:
        cells = [
            r.cells[col.metric] for r in table.rows if col.metric in r.cells and not r.cells[col.metric].off_protocol
        ]
        if not cells:
            continue
        pick = min if col.direction == "down" else max
        best = pick(float(c.value) for c in cells)
        for c in cells:
            c.best = float(c.value) == best


# ----------------------------------------------------------------------------------------------------------
# Rendering


def render(table: Table, fmt: str) -> str:
    """The table in ``fmt`` (md, latex, csv or html)."""
    if fmt not in FORMATS:
        raise UnknownNameError(did_you_mean("format", fmt, FORMATS))
    return {"md": _md, "latex": _latex, "csv": _csv, "html": _html}[fmt](table)


def display_frame(t: Table, pm: str = " ± ") -> pd.DataFrame:
    """The table as printed: one row per table row, the row label then each column's text ('103.6 ± 2.0')."""
    rows = []
    for r in t.rows:
        cells = [r.cells.get(c.metric) for c in t.columns]
        rows.append([r.label] + ["" if cell is None else cell.text(pm) for cell in cells])
    return pd.DataFrame(rows, columns=[t.row_header] + [c.title for c in t.columns])


def best_mask(t: Table) -> pd.DataFrame:
    """True where a cell holds its column's best comparable value (the shape of :func:`display_frame`)."""
    rows = [[False] + [bool(r.cells.get(c.metric) and r.cells[c.metric].best) for c in t.columns] for r in t.rows]
    return pd.DataFrame(rows, columns=[t.row_header] + [c.title for c in t.columns])


def _footer(table: Table) -> list[str]:
    lines = list(table.footnotes)
    if not any(r.measured for r in table.rows):
        lines.append(
            f"No measured rows. Add one with `vgbench eval --dataset {table.dataset} --run NAME ...`, then "
            "`vgbench table --results <store>`."
        )
    return lines


def _md(t: Table) -> str:
    # pandas' own Markdown writer needs tabulate (not a dependency) and pads the cells: written here instead.
    shown, best = display_frame(t), best_mask(t)
    out = [
        f"**Table {t.number}: {t.title}**",
        "",
        "| " + " | ".join(shown.columns) + " |",
        "|" + "---|" * shown.shape[1],
    ]
    for (_, row), (_, marks) in zip(shown.iterrows(), best.iterrows(), strict=True):
        out.append("| " + " | ".join(f"**{v}**" if m else v for v, m in zip(row, marks, strict=True)) + " |")
    out.append("")
    out += [f"- {line}" for line in _footer(t)]
    return "\n".join(out) + "\n"


def _tex_escape(s: str) -> str:
    for a, b in (
        ("\\", r"\textbackslash{}"),
        ("&", r"\&"),
        ("%", r"\%"),
        ("#", r"\#"),
        ("_", r"\_"),
        ("×", r"$\times$"),
        ("↓", r"$\downarrow$"),
        ("↑", r"$\uparrow$"),
        ("—", "---"),
        (DAGGER, r"$^\dagger$"),
        ("*", r"$^*$"),
        ("±", r"$\pm$"),
    ):
        s = s.replace(a, b)
    return s


def _latex(t: Table) -> str:
    """Styler.to_latex with booktabs rules; best values through Styler's ``textbf`` wrap, the caption above the
    tabular (Styler's placement), a rule between published and measured rows, the footnotes printed below the
    tabular inside the float (the dagger's explanation included), and usage hints as comments after."""
    best = best_mask(t)
    styler = (
        display_frame(t)
        .style.hide(axis="index")
        .format(_tex_escape)
        .format_index(_tex_escape, axis=1)
        .apply(lambda _: best.replace({True: "textbf: --rwrap;", False: ""}), axis=None)
    )
    lines = styler.to_latex(
        column_format="l" + "c" * len(t.columns),
        position="t",
        position_float="centering",
        hrules=True,
        caption=_tex_escape(t.title),
        label=f"tab:videogpt-{t.number}",
        environment="table",
    ).splitlines()
    first_measured = next((i for i, r in enumerate(t.rows) if r.measured), None)
    if first_measured and all(r.measured for r in t.rows[first_measured:]):  # published rows above, measured below
        lines.insert(lines.index(r"\midrule") + 1 + first_measured, r"\midrule")
    end = lines.index(r"\end{tabular}") + 1
    if t.footnotes:  # printed below the tabular, inside the float, in footnote size
        notes = [r"\par\smallskip{\footnotesize"] + [_tex_escape(f) + r"\par" for f in t.footnotes] + ["}"]
        lines[end:end] = notes
    hints = [line for line in _footer(t) if line not in t.footnotes]  # instructions, not part of the table
    return "\n".join(lines + [f"% {line}" for line in hints]) + "\n"


def _csv(t: Table) -> str:
    rows = []
    for r in t.rows:
        line = [r.label]
        for c in t.columns:
            cell = r.cells.get(c.metric)
            line += ["", ""] if cell is None else [cell.value + (DAGGER if cell.off_protocol else ""), cell.std]
        best = [c.header for c in t.columns if c.metric in r.cells and r.cells[c.metric].best]
        rows.append(line + ["measured" if r.measured else "published", ";".join(best)])
    width = 1 + 2 * len(t.columns)
    rows += [[note] + [""] * (width - 1) + ["footnote", ""] for note in t.footnotes]  # every † explained
    header = [t.row_header] + [h for c in t.columns for h in (c.title, f"{c.header} ±")] + ["kind", "best"]
    return pd.DataFrame(rows, columns=header).to_csv(index=False, lineterminator="\n")


def _html(t: Table) -> str:
    """Styler.to_html: best values bold (CSS), measured rows with class ``measured``, footnotes in a list after."""
    shown, best = display_frame(t), best_mask(t)
    measured = pd.DataFrame(
        [["measured" if r.measured else ""] * shown.shape[1] for r in t.rows], columns=shown.columns
    )
    table_html = (
        shown.style.hide(axis="index")
        .format(escape="html")
        .format_index(escape="html", axis=1)
        .apply(lambda _: best.replace({True: "font-weight: bold;", False: ""}), axis=None)
        .set_td_classes(measured)
        .set_uuid(f"table-{t.number}")
        .set_caption(f"Table {t.number}: {t.title}")
        .set_table_attributes('class="vgbench"')
        .to_html()
    )
    notes = "".join(f"<li>{html.escape(x)}</li>" for x in _footer(t))
    return table_html + f'<ul class="vgbench-notes">{notes}</ul>\n'


def render_tables(which: str, fmt: str, records: pd.DataFrame | list[dict]) -> str:
    """Render table ``which`` ('1'..'7' or 'all') with measured rows from ``records`` (a results frame or list)."""
    tables = load_tables()
    numbers = sorted(tables, key=int) if which == "all" else [str(which)]
    parts = []
    for n in numbers:
        if n not in tables:
            raise UnknownNameError(did_you_mean("table", n, tables))
        parts.append(render(with_results(tables[n], records), fmt))
    return "\n".join(parts)
