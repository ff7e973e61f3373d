"""PNG charts of the ablation tables (4, 5, 6) with published and measured points told apart (matplotlib)."""

from __future__ import annotations

from pathlib import Path

from vgbench import cache
from vgbench.errors import MissingDependencyError
from vgbench.leaderboard import Table

PLOTTED = ("4", "5", "6")


def _plt():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise MissingDependencyError("matplotlib", "plot", "vgbench table --plot") from exc
    return plt


def plot_table(table: Table, folder: Path) -> Path:
    """One PNG for table 4 (layers), 5 (latent sizes) or 6 (codes): one panel per metric column."""
    plt = _plt()
    published = [r for r in table.rows if not r.measured]
    measured = [r for r in table.rows if r.measured]
    fig, axes = plt.subplots(1, len(table.columns), figsize=(4.2 * len(table.columns), 3.6), squeeze=False)
    labels = [r.label for r in published]
    xs = list(range(len(labels)))
    for ax, col in zip(axes[0], table.columns, strict=True):
        ys = [float(r.cells[col.metric].value) for r in published]
        errs = [float(r.cells[col.metric].std or 0) for r in published]
        ax.errorbar(xs, ys, yerr=errs, fmt="o-", color="tab:blue", capsize=3, label="published")
        for i, r in enumerate(measured):
            if col.metric in r.cells:
                c = r.cells[col.metric]
                ax.axhline(
                    float(c.value),
                    color=f"C{i + 1}",
                    ls="--",
                    label=r.label.replace("VideoGPT — vgbench, ", "measured: ")
                    + (" (other protocol)" if c.off_protocol else ""),
                )
        ax.set_xticks(
            xs, labels, rotation=45 if len(labels) > 4 else 0, ha="right" if len(labels) > 4 else "center", fontsize=8
        )
        ax.set_title(col.title)
        ax.set_xlabel(table.row_header)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"Table {table.number}: {table.title.split('. ')[0]}", fontsize=9)
    folder.mkdir(parents=True, exist_ok=True)
    return save_png(fig, folder / f"table{table.number}.png", dpi=120)


def save_png(fig, dest: Path, dpi: int = 90) -> Path:
    """Lay out, write ``fig`` to ``dest`` atomically as PNG, close it; returns ``dest``."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with cache.atomic_path(dest) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    plt.close(fig)
    return dest
