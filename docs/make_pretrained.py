"""Make vgbench/pretrained/quickstart, the quickstart's shipped pretrained models (issue 19), from a finished pair of
`vgbench train` runs: the final prior checkpoint (which holds its VQ-VAE) as bf16 files under 1 MB, with how it was
made.

    python docs/make_pretrained.py PRIOR_RUN/prior/checkpoints/final.pt VQVAE_SECONDS PRIOR_SECONDS

The shipped files were made on 2026-12-07 on the 2-core development CPU (torch 2.13.0, 2 threads) with exactly:

    export OMP_NUM_THREADS=2 VGBENCH_DATA=QS/data  # QS: a `vgbench quickstart` run folder (1,024 train, 64 test clips)
    vgbench -q train quickstart --model vqvae.quickstart --stage vqvae --out vq --steps 2000 --batch-size 8 --seed 0 \\
      --device cpu --val-every 200 --ckpt-every 200
    vgbench -q train quickstart --model gpt.quickstart --stage prior --vqvae vq/vqvae/checkpoints/final.pt --out pr \\
      --steps 6000 --batch-size 8 --seed 0 --device cpu --val-every 250 --ckpt-every 250

They are the quickstart's own cards (``vqvae.quickstart``, ``gpt.quickstart``) and data, trained 2000 and 6000
steps instead of the demo's 600 and 600.
"""

import sys
from pathlib import Path

from vgbench import pretrained

VQ_COMMAND = (
    "vgbench -q train quickstart --model vqvae.quickstart --stage vqvae --out vq --steps 2000 --batch-size 8 --seed 0 "
    "--device cpu --val-every 200 --ckpt-every 200"
)
PRIOR_COMMAND = (
    "vgbench -q train quickstart --model gpt.quickstart --stage prior --vqvae vq/vqvae/checkpoints/final.pt --out pr "
    "--steps 6000 --batch-size 8 --seed 0 --device cpu --val-every 250 --ckpt-every 250"
)

if __name__ == "__main__":
    ckpt, vq_seconds, seconds = Path(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
    made = {
        "vqvae_command": VQ_COMMAND,
        "command": PRIOR_COMMAND,
        "seed": 0,
        "vqvae_steps": 2000,
        "vqvae_seconds": round(vq_seconds, 1),
        "seconds": round(seconds, 1),
        "machine": "2 CPU cores",
        "environment": "OMP_NUM_THREADS=2, torch 2.13.0 CPU, Python 3.11",
        "data": "the quickstart train split of a `vgbench quickstart` run (1,024 clips, seed 0), validated on its "
        "64 test clips",
        "date": "2026-12-07",
    }
    m = pretrained.pack(ckpt, pretrained.FOLDER, made)
    for info in m["files"]:
        print(f"{info['file']}: {info['bytes']} bytes, {info['tensors']} tensors, sha256 {info['sha256']}")
