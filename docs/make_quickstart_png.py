"""Compose docs/quickstart.png (the README's picture of the report) from a finished quickstart folder.

    python docs/make_quickstart_png.py quickstart        # after `make demo`

One frame (the middle one) of each GIF grid, real clips / reconstructions / this run's samples / the shipped
pretrained models' samples side by side, above the training curves; kept under 200 KB.
"""

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402


def middle_frame(gif: Path) -> np.ndarray:
    with Image.open(gif) as im:
        im.seek(im.n_frames // 2)
        return np.asarray(im.convert("L"))


def main(folder: Path, dest: Path) -> None:
    fig_dir = folder / "figures"
    panels = [("real test clips", "real.gif"), ("VQ-VAE reconstructions", "reconstructions.gif"),
              ("this run's samples (frame 1 given)", "samples.gif"),
              ("PRETRAINED models' samples", "pretrained.gif")]  # fmt: skip
    curves = np.asarray(Image.open(fig_dir / "curves.png").convert("RGB"))
    fig = plt.figure(figsize=(11, 7.6), dpi=100)
    grid = fig.add_gridspec(2, len(panels), height_ratios=[1, 1.25], hspace=0.08, wspace=0.04)
    for i, (title, name) in enumerate(panels):
        ax = fig.add_subplot(grid[0, i])
        ax.imshow(middle_frame(fig_dir / name), cmap="gray", vmin=0, vmax=255)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    ax = fig.add_subplot(grid[1, :])
    ax.imshow(curves)
    ax.axis("off")
    fig.suptitle(
        "what quickstart/report.html shows (make demo, 2 CPU cores; frame 8 of each GIF grid)", fontsize=10, y=0.93
    )
    fig.savefig(dest, dpi=100, bbox_inches="tight")
    img = Image.open(dest).convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    img.save(dest, optimize=True)
    print(f"{dest}: {dest.stat().st_size / 1024:.0f} KB")


if __name__ == "__main__":
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "quickstart")
    try:
        main(folder, Path(__file__).with_name("quickstart.png"))
    except OSError as exc:  # a missing or damaged figure: say which, no traceback
        sys.exit(f"error: {folder}: needs a finished quickstart run's figures/ ({exc}); run `make demo` first")
