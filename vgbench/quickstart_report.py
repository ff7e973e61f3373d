"""The quickstart's report: ``report.html`` (opened first) and ``report.md`` from one description of the run.

Everything the report shows is a file beside it (GIFs, PNG curves, the results store), referenced by relative path,
so the folder can be moved or zipped. The training curves are drawn with matplotlib (the ``plot`` extra).
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from pathlib import Path

from vgbench import cache
from vgbench.errors import MissingDependencyError
from vgbench.plots import save_png
from vgbench.runfolder import read_log


@dataclass
class Figure:
    """An image of the report: a path relative to the report's folder and a caption."""

    path: str
    caption: str


@dataclass
class Reference:
    """A metric beside its reference points measured in the same run: set name -> value (None: not measured)."""

    label: str
    values: dict
    expected: str  # the ordering a working pipeline shows, one sentence
    shown: str  # whether this run shows it, in words
    intervals: dict = field(default_factory=dict)  # set name -> the record's interval {low, high, ...}


@dataclass
class ReportData:
    """What the report says."""

    title: str
    intro: str
    videos: list[Figure]  # real clips, reconstructions, samples
    curves: list[Figure]
    metrics: list[dict]  # result records (vgbench.results)
    stages: list[dict]  # {name, seconds, note}
    next_steps: list[str]
    facts: dict = field(default_factory=dict)  # seed, device, versions, checkpoint hashes, ...
    references: list[Reference] = field(default_factory=list)  # each metric beside its reference points
    reference_columns: dict = field(default_factory=dict)  # set name -> what it is, in words
    notes: list[str] = field(default_factory=list)  # plain-words lines under the curves (have they flattened?)
    comparisons: list[str] = field(default_factory=list)  # plain-words lines of paired comparisons


def _value(rec: dict) -> str:
    v = rec["value"]
    digits = 4 if abs(v) < 10 else 2
    text = f"{v:.{digits}f}"
    if rec.get("std") is not None:
        text += f" ± {rec['std']:.{digits}f}"
    return text


def _num(v: float) -> str:
    return f"{v:.{4 if abs(v) < 10 else 2}f}"


def _interval(rec: dict) -> str:
    iv = rec.get("interval") or {}
    return f"[{_num(iv['low'])}, {_num(iv['high'])}]" if iv else ""


def _at_inf(rec: dict) -> str:
    cv = rec.get("curve") or {}
    if "value_inf" not in cv:
        return ""
    iv = cv.get("interval_inf")
    return _num(cv["value_inf"]) + (f" [{_num(iv['low'])}, {_num(iv['high'])}]" if iv else "")


def _metric_rows(metrics: list[dict]) -> list[tuple[str, ...]]:
    rows = []
    for r in metrics:
        label = r.get("label") or r["metric"]
        rows.append(
            (
                label,
                _value(r),
                _interval(r),
                _at_inf(r),
                f"{r['metric']}.{r['protocol']}",
                r["protocol_hash"],
                str(r.get("n_samples", "")),
                "yes" if r.get("off_protocol") else "no",
            )
        )
    return rows


METRIC_HEADER = ("metric", "value", "95% interval", "N -> inf (FD∞)", "protocol", "protocol hash", "N", "off-protocol")
INTERVAL_NOTE = (
    "Intervals: percentile bootstrap over the evaluated clips (1000 resamples; FD-type values bias-centred); they "
    "cover the draw of the clips, not another training run. N -> inf: the fit v(n) = v∞ + k/n on nested subsets "
    "(Chong & Forsyth, CVPR 2020)."
)


def _cell(value, interval) -> str:
    """A reference point: its value and 95 % interval ("—" when not measured)."""
    if value is None:
        return "—"
    return f"{_value({'value': value})} {_interval({'interval': interval})}".strip()


def _reference_rows(d: ReportData) -> tuple[list[str], list[list[str]]]:
    cols = list(d.reference_columns)
    rows = []
    for r in d.references:
        cells = [_cell(r.values.get(c), r.intervals.get(c)) for c in cols]
        rows.append([r.label, *cells, f"{r.expected} {r.shown}"])
    return ["metric", *cols, "what a working pipeline shows; this run"], rows


def _references_markdown(d: ReportData) -> list[str]:
    if not d.references:
        return []
    head, rows = _reference_rows(d)
    out = ["## Reference points", "", "Measured in this run at the samples' N (value and 95% interval):", ""]
    out += [f"- **{k}**: {v}" for k, v in d.reference_columns.items()]
    out += ["", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return out + ["| " + " | ".join(row) + " |" for row in rows] + [""]


def _references_html(d: ReportData) -> list[str]:
    if not d.references:
        return []
    e = html.escape
    head, rows = _reference_rows(d)
    parts = ["<h2>Reference points</h2><p>Measured in this run at the samples' N (value and 95% interval):</p><ul>"]
    parts += [f"<li><b>{e(k)}</b>: {e(v)}</li>" for k, v in d.reference_columns.items()]
    parts.append("</ul><table><tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr>")
    parts += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in rows]
    return [*parts, "</table>"]


def render_markdown(d: ReportData) -> str:
    """The report as Markdown (images inline)."""
    out = [f"# {d.title}", "", d.intro, ""]
    out += ["## Videos", ""]
    out += [f"**{f.caption}**\n\n![{f.caption}]({f.path})\n" for f in d.videos]
    out += ["## Metrics", "", "| " + " | ".join(METRIC_HEADER) + " |", "|" + "---|" * len(METRIC_HEADER)]
    out += ["| " + " | ".join(row) + " |" for row in _metric_rows(d.metrics)]
    out += ["", INTERVAL_NOTE, ""]
    out += [f"- {c}" for c in d.comparisons] + ([""] if d.comparisons else [])
    out += ["Every record, with all protocol parameters and provenance: `results.jsonl`.", ""]
    out += _references_markdown(d)
    out += ["## Training curves", ""]
    out += [f"![{f.caption}]({f.path})\n" for f in d.curves]
    out += [f"- {n}" for n in d.notes] + ([""] if d.notes else [])
    out += ["## Time per stage", "", "| stage | seconds | note |", "|---|---|---|"]
    out += [f"| {s['name']} | {s['seconds']:.1f} | {s.get('note', '')} |" for s in d.stages]
    out += ["", "## Run facts", ""]
    out += [f"- {k}: `{v}`" for k, v in d.facts.items()]
    out += ["", "## What to run next", ""]
    out += [f"- `{s}`" for s in d.next_steps]
    return "\n".join(out) + "\n"


CSS = """
body{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd}
.videos{display:flex;gap:1.2em;flex-wrap:wrap}.videos figure{margin:0}
figcaption{font-size:.9em;color:#555;text-align:center}img{image-rendering:pixelated}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}
code{background:#f4f4f4;padding:0 .2em}.curves img{max-width:100%}
"""


def render_html(d: ReportData) -> str:
    """The report as a self-contained HTML page (images by relative path)."""
    e = html.escape
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{e(d.title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{e(d.title)}</h1><p>{e(d.intro)}</p>",
        "<h2>Videos</h2><div class='videos'>",
    ]
    for f in d.videos:
        parts.append(
            f"<figure><img src='{e(f.path)}' alt='{e(f.caption)}'><figcaption>{e(f.caption)}</figcaption></figure>"
        )
    parts.append("</div><h2>Metrics</h2><table><tr>" + "".join(f"<th>{e(h)}</th>" for h in METRIC_HEADER) + "</tr>")
    for row in _metric_rows(d.metrics):
        parts.append("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>")
    parts.append(f"</table><p>{e(INTERVAL_NOTE)}</p>")
    if d.comparisons:
        parts.append("<ul>" + "".join(f"<li>{e(c)}</li>" for c in d.comparisons) + "</ul>")
    parts.append(
        "<p>Every record, with all protocol parameters and provenance: "
        "<a href='results.jsonl'><code>results.jsonl</code></a>.</p>"
    )
    parts += _references_html(d)
    parts.append("<h2>Training curves</h2><div class='curves'>")
    for f in d.curves:
        parts.append(
            f"<figure><img src='{e(f.path)}' alt='{e(f.caption)}'><figcaption>{e(f.caption)}</figcaption></figure>"
        )
    if d.notes:
        parts.append("<ul>" + "".join(f"<li>{e(n)}</li>" for n in d.notes) + "</ul>")
    parts.append("</div><h2>Time per stage</h2><table><tr><th>stage</th><th>seconds</th><th>note</th></tr>")
    for s in d.stages:
        parts.append(f"<tr><td>{e(s['name'])}</td><td>{s['seconds']:.1f}</td><td>{e(s.get('note', ''))}</td></tr>")
    parts.append("</table><h2>Run facts</h2><ul>")
    parts += [f"<li>{e(str(k))}: <code>{e(str(v))}</code></li>" for k, v in d.facts.items()]
    parts.append("</ul><h2>What to run next</h2><ul>")
    parts += [f"<li><code>{e(s)}</code></li>" for s in d.next_steps]
    parts.append("</ul></body></html>\n")
    return "\n".join(parts)


def write(folder: Path, d: ReportData) -> tuple[Path, Path]:
    """Write ``report.html`` and ``report.md`` into ``folder`` (atomically)."""
    folder = Path(folder)
    html_path, md_path = folder / "report.html", folder / "report.md"
    cache.atomic_write_bytes(html_path, render_html(d).encode())
    cache.atomic_write_bytes(md_path, render_markdown(d).encode())
    return html_path, md_path


def plot_curves(metrics_logs: dict[str, Path], dest: Path, series: list[tuple[str, str, str, str]]) -> Path:
    """One PNG with a panel per series: (stage, record kind, key, title), read from each stage's metrics.jsonl."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise MissingDependencyError("matplotlib", "plot", "the report's training curves") from exc
    cols = min(3, len(series))
    rows = math.ceil(len(series) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False)
    for ax, (stage, kind, key, title) in zip(axes.flat, series, strict=False):
        recs = read_log(metrics_logs.get(stage))
        pts = [(r["step"], r[key]) for r in recs if r.get("kind") == kind and key in r]
        if pts:
            xs, ys = zip(*pts, strict=True)
            ax.plot(xs, ys, marker="o" if len(pts) < 20 else None, ms=3)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(series) :]:
        ax.axis("off")
    return save_png(fig, dest)


def curve_note(points: list[tuple[int, float]], name: str, flat: float = 0.05) -> str:
    """Whether a validation curve (step, value) has flattened, in one sentence: flattened when its last interval
    moved it by less than ``flat`` of its whole change; otherwise how much further it would fall if the last three
    points' geometric decay went on (sum of the series), or that it falls too steadily to say."""
    if len(points) < 3:
        return f"{name}: fewer than 3 validation points; cannot say whether it has flattened."
    (_, a), (_, b), (s, c) = points[-3:]
    total = points[0][1] - c
    last = b - c
    head = f"{name}: {points[0][1]:.4g} at step {points[0][0]} -> {c:.4g} at step {s}"
    if total > 0 and abs(last) < flat * total:
        return f"{head}; flattened (the last interval moved it {last:.3g}, under {flat:.0%} of the whole fall)."
    ratio = (b - c) / (a - b) if a != b else float("inf")
    if 0 < ratio < 1:
        more = last * ratio / (1 - ratio)
        return (f"{head}; still falling: at the last intervals' rate of decay it would fall about {more:.3g} more, "
                f"to about {c - more:.4g}.")  # fmt: skip
    return f"{head}; still falling without slowing (last interval {last:.3g}): longer training would lower it."


def plot_sample_curves(records: list[dict], dest: Path) -> Path | None:
    """One PNG: each record's sample-count curve (value at nested subset sizes) and its fit v∞ + k/n, with v∞
    marked; None when no record has a curve."""
    with_curve = [r for r in records if (r.get("curve") or {}).get("points")]
    if not with_curve:
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise MissingDependencyError("matplotlib", "plot", "the report's sample-count curves") from exc
    fig, ax = plt.subplots(figsize=(6.0, 3.6))
    for r in with_curve:
        cv = r["curve"]
        ns = [p["n"] for p in cv["points"]]
        line = ax.plot(ns, [p["value"] for p in cv["points"]], "o", ms=4, label=r.get("label") or r["metric"])[0]
        grid = [ns[0] + (ns[-1] - ns[0]) * i / 50 for i in range(51)]
        ax.plot(grid, [cv["value_inf"] + cv["k"] / n for n in grid], "-", color=line.get_color(), alpha=0.6)
        ax.axhline(cv["value_inf"], color=line.get_color(), ls=":", alpha=0.6)
    ax.set_xlabel("videos per set (nested random subsets)")
    ax.set_ylabel("value; dotted: fitted value at N -> inf")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_png(fig, dest)
