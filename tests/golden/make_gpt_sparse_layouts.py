"""Golden sparse layouts from the reference code: VG's ``StridedSparsityConfig`` (wilson1yan/VideoGPT@733d2b1,
``videogpt/attention.py``), run, not copied.

Run: python tests/golden/make_gpt_sparse_layouts.py PATH_TO_VG   (a checkout or its bare git directory)
Writes tests/golden/gpt_sparse_layouts.npz: per latent grid, the block grid and the causal block layout
(block 32, 4 local blocks) as packed bits, plus the dense decode-time mask rows VG builds
(``get_non_block_layout_row``) for every 37th position.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from bench_gpt import load_vg  # noqa: E402  (imports VG's modules at run time)

GRIDS = [(4, 32, 32), (8, 32, 32), (4, 16, 16), (1, 64, 64), (16, 8, 8), (16, 16, 16, 2), (8, 16, 16, 4)]
ROW_STEP = 37


def main(vg_path: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        vg = load_vg(Path(vg_path), Path(tmp))
        out = {}
        for shape in GRIDS:
            key = "x".join(map(str, shape))
            cfg = vg.attention.StridedSparsityConfig(shape, 1, True, 32, 4)
            layout = cfg.make_layout()
            out[f"{key}/grid"] = np.array(cfg._block_shape)
            out[f"{key}/layout"] = np.packbits(layout[0].numpy().astype(bool))
            rows = [cfg.get_non_block_layout_row(layout, r)[0, 0].numpy().astype(bool)
                    for r in range(0, int(np.prod(shape)), ROW_STEP)]  # fmt: skip
            out[f"{key}/rows"] = np.packbits(np.stack(rows))
    np.savez_compressed(Path(__file__).with_name("gpt_sparse_layouts.npz"), **out)


if __name__ == "__main__":
    main(sys.argv[1])
