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


def with_results(table: Table, results: pd.DataFrame | list[dict]) -> Table:
    """Add a row per run of ``results`` (a results frame, or records) for the table's dataset, then mark the best
    comparable values. A run's latest record of each metric wins."""
    from vgbench import results as results_mod

    frame = results if isinstance(results, pd.DataFrame) else results_mod.to_frame(results)
    notes = []
    if not frame.empty and "metric" in frame:
        dataset = frame["dataset"].fillna("") if "dataset" in frame else pd.Series("", index=frame.index)
        runs = frame["run"].fillna("").replace("", "unnamed run") if "run" in frame else "unnamed run"
        mine = frame.assign(run=runs)[
            (dataset == table.dataset) & frame["metric"].isin([c.metric for c in table.columns])
        ]
        latest = mine.groupby(["run", "metric"], sort=False).tail(1)
        for run in pd.unique(mine["run"]):
            cells = {}
            for _, row in latest[latest["run"] == run].iterrows():
                r = _plain(row)
                col = next(c for c in table.columns if c.metric == r["metric"])
                cells[col.metric], why = _measured_cell(r, col)
                if why:
                    notes.append(
                        f"{DAGGER} {run}, {col.header}: {why}; the published numbers use {col.protocol}. Not ranked."
                    )
            table.rows.append(Row(f"VideoGPT — vgbench, {run}", cells, measured=True))
    table.footnotes = table.footnotes + notes
    mark_best(table)
    return table


def _measured_cell(r: dict, col: Column) -> tuple[Cell, str]:
    """The cell of one record in column ``col``, and why it is not comparable ("" when it is)."""
    key = f"{r['metric']}.{r['protocol']}"
    current = _current_hash(r)
    changed = current is not None and current != r.get("protocol_hash")
    off = key != col.protocol or bool(r.get("off_protocol")) or changed
    why = ""
    if off:
        why = (
            f"measured under {key}"
            + (" (off-protocol run)" if r.get("off_protocol") else "")
            + (" with protocol parameters that have changed since" if changed else "")
        )
    std, dec = r.get("std"), _decimals(r["value"])
    return Cell(_fmt(r["value"], dec), _fmt(std, dec) if std else "", off_protocol=off), why


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
    if first_measured:  # published rows above, measured below
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
