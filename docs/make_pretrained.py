"""Make vgbench/pretrained/quickstart (the quickstart's shipped pretrained prior, issue 19) from a finished
`vgbench train` run: its final prior checkpoint split into bf16 files under 1 MB, with how it was made.

    python docs/make_pretrained.py RUN/prior/checkpoints/final.pt SECONDS VQVAE_SECONDS

How the shipped files were made (2026-12-07, 2-core development CPU, one torch thread, the other core busy):

    export OMP_NUM_THREADS=1 VGBENCH_DATA=$PWD/data
    vgbench data prepare quickstart     # or quickstart.prepare(counts={"train": 1024, "test": 64}), as the run did
    # the VQ-VAE: vgbench.train.train(model="vqvae.quickstart", ...), the function `vgbench train` calls:
    vgbench train quickstart --model vqvae.quickstart --stage vqvae --out vq16 --steps 600 --batch-size 8 --seed 0 \\
      --device cpu --val-every 150 --ckpt-every 150 --set training.warmup_steps=20 --set training.schedule=cosine \\
      --set training.lr=0.002
    vgbench train quickstart --model gpt.quickstart --stage prior --vqvae vq16/vqvae/checkpoints/final.pt \\
      --out pre --steps 3000 --batch-size 8 --seed 0 --device cpu --val-every 500 --ckpt-every 500 \\
      --set config.cond_frames=0 --set config.dropout=0.0 --set training.warmup_steps=50 \\
      --set training.schedule=cosine --set training.lr=0.002
"""

import sys
from pathlib import Path

from vgbench import pretrained

VQ_COMMAND = (
    "vgbench train quickstart --model vqvae.quickstart --stage vqvae --out vq16 --steps 600 --batch-size 8 --seed 0 "
    "--device cpu --val-every 150 --ckpt-every 150 --set training.warmup_steps=20 --set training.schedule=cosine "
    "--set training.lr=0.002"
)
PRIOR_COMMAND = (
    "vgbench train quickstart --model gpt.quickstart --stage prior --vqvae vq16/vqvae/checkpoints/final.pt --out pre "
    "--steps 3000 --batch-size 8 --seed 0 --device cpu --val-every 500 --ckpt-every 500 --set config.cond_frames=0 "
    "--set config.dropout=0.0 --set training.warmup_steps=50 --set training.schedule=cosine --set training.lr=0.002"
)

if __name__ == "__main__":
    ckpt, seconds, vq_seconds = Path(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
    made = {
        "command": PRIOR_COMMAND,
        "vqvae_command": VQ_COMMAND,
        "seed": 0,
        "seconds": round(seconds, 1),
        "vqvae_seconds": round(vq_seconds, 1),
        "machine": "the 2-core development CPU, one torch thread (OMP_NUM_THREADS=1), torch 2.13 CPU",
        "data": "quickstart train split, 1024 clips (seed 0), validated on 64 test clips",
        "date": "2026-12-07",
    }
    m = pretrained.pack(ckpt, pretrained.FOLDER, made)
    for part, info in m["files"].items():
        print(f"{part}: {info['file']} {info['bytes']} bytes sha256 {info['sha256']}")
