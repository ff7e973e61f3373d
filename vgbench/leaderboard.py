"""Published tables (``leaderboards/``) plus measured rows from a results store, rendered as md/latex/csv/html.

A measured value whose protocol differs from the column's (or whose protocol parameters changed since) is marked
with a dagger and footnoted, and it is never ranked beside the published numbers.
"""

from __future__ import annotations

import csv
import html
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

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


def with_results(table: Table, records: list[dict]) -> Table:
    """Add a row per run of ``records`` for the table's dataset, then mark the best comparable values."""
    by_run: dict[str, dict[str, dict]] = {}
    for r in records:
        if r.get("dataset", "") != table.dataset:
            continue
        for col in table.columns:
            if r.get("metric") == col.metric:
                by_run.setdefault(r.get("run") or "unnamed run", {})[col.metric] = r  # the latest record wins
    notes = []
    for run, recs in by_run.items():
        cells = {}
        for metric, r in recs.items():
            col = next(c for c in table.columns if c.metric == metric)
            key = f"{r['metric']}.{r['protocol']}"
            current = _current_hash(r)
            off = (
                key != col.protocol
                or r.get("off_protocol", False)
                or (current is not None and current != r.get("protocol_hash"))
            )
            if off:
                why = (
                    f"measured under {key}"
                    + (" (off-protocol run)" if r.get("off_protocol") else "")
                    + (
                        " with protocol parameters that have changed since"
                        if current not in (None, r.get("protocol_hash"))
                        else ""
                    )
                )
                notes.append(
                    f"{DAGGER} {run}, {col.header}: {why}; the published numbers use {col.protocol}. Not ranked."
                )
            std, dec = r.get("std"), _decimals(r["value"])
            cells[metric] = Cell(_fmt(r["value"], dec), _fmt(std, dec) if std else "", off_protocol=off)
        table.rows.append(Row(f"VideoGPT — vgbench, {run}", cells, measured=True))
    table.footnotes = table.footnotes + notes
    mark_best(table)
    return table


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


def _footer(table: Table) -> list[str]:
    lines = list(table.footnotes)
    if not any(r.measured for r in table.rows):
        lines.append(
            f"No measured rows. Add one with `vgbench eval --dataset {table.dataset} --run NAME ...`, then "
            "`vgbench table --results <store>`."
        )
    return lines


def _md(t: Table) -> str:
    out = [
        f"**Table {t.number}: {t.title}**",
        "",
        "| " + " | ".join([t.row_header] + [c.title for c in t.columns]) + " |",
        "|" + "---|" * (len(t.columns) + 1),
    ]
    for r in t.rows:
        cells = []
        for c in t.columns:
            cell = r.cells.get(c.metric)
            cells.append("" if cell is None else f"**{cell.text()}**" if cell.best else cell.text())
        out.append("| " + " | ".join([r.label] + cells) + " |")
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
    out = [
        r"\begin{table}[t]",
        r"\centering",
        r"\begin{tabular}{l" + "c" * len(t.columns) + "}",
        r"\toprule",
        " & ".join(_tex_escape(h) for h in [t.row_header] + [c.title for c in t.columns]) + r" \\",
        r"\midrule",
    ]
    for i, r in enumerate(t.rows):
        if r.measured and (i == 0 or not t.rows[i - 1].measured):
            out.append(r"\midrule")  # published rows above, measured below
        cells = []
        for c in t.columns:
            cell = r.cells.get(c.metric)
            text = "" if cell is None else _tex_escape(cell.text(pm=" ± "))
            cells.append(rf"\textbf{{{text}}}" if cell is not None and cell.best else text)
        out.append(" & ".join([_tex_escape(r.label)] + cells) + r" \\")
    out += [
        r"\bottomrule",
        r"\end{tabular}",
        rf"\caption{{{_tex_escape(t.title)}}}",
        rf"\label{{tab:videogpt-{t.number}}}",
        r"\end{table}",
    ]
    out += [f"% {line}" for line in _footer(t)]
    return "\n".join(out) + "\n"


def _csv(t: Table) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    header = [t.row_header]
    for c in t.columns:
        header += [c.title, f"{c.header} ±"]
    w.writerow(header + ["kind", "best"])
    for r in t.rows:
        line = [r.label]
        best = []
        for c in t.columns:
            cell = r.cells.get(c.metric)
            line += ["", ""] if cell is None else [cell.value + (DAGGER if cell.off_protocol else ""), cell.std]
            if cell is not None and cell.best:
                best.append(c.header)
        w.writerow(line + ["measured" if r.measured else "published", ";".join(best)])
    return buf.getvalue()


def _html(t: Table) -> str:
    e = html.escape
    out = [
        f'<table class="vgbench" id="table-{t.number}">',
        f"<caption>Table {t.number}: {e(t.title)}</caption>",
        "<thead><tr>"
        + "".join(f"<th>{e(h)}</th>" for h in [t.row_header] + [c.title for c in t.columns])
        + "</tr></thead>",
        "<tbody>",
    ]
    for r in t.rows:
        tds = []
        for c in t.columns:
            cell = r.cells.get(c.metric)
            text = "" if cell is None else e(cell.text())
            tds.append(f"<td><b>{text}</b></td>" if cell is not None and cell.best else f"<td>{text}</td>")
        cls = ' class="measured"' if r.measured else ""
        out.append(f"<tr{cls}><th>{e(r.label)}</th>" + "".join(tds) + "</tr>")
    out += ["</tbody>", "<tfoot>"] + [f'<tr><td colspan="{len(t.columns) + 1}">{e(x)}</td></tr>' for x in _footer(t)]
    out += ["</tfoot>", "</table>"]
    return "\n".join(out) + "\n"


def render_tables(which: str, fmt: str, records: list[dict]) -> str:
    """Render table ``which`` ('1'..'7' or 'all') with measured rows from ``records``."""
    tables = load_tables()
    numbers = sorted(tables, key=int) if which == "all" else [str(which)]
    parts = []
    for n in numbers:
        if n not in tables:
            raise UnknownNameError(did_you_mean("table", n, tables))
        parts.append(render(with_results(tables[n], records), fmt))
    return "\n".join(parts)
