"""The quickstart's pretrained checkpoint (issue 19): a prior checkpoint made by `vgbench train`, shipped in bf16.

A vgbench prior checkpoint holds its VQ-VAE, so it is split for shipping into one file per network, each under
1 MB: ``vqvae.bf16.pt`` and ``prior.bf16.pt`` (``torch.save`` dicts of tensors, floating tensors cast to bf16,
read with ``weights_only=True``), beside ``pretrained.json``: the card and resolved configs, the sha256 of each
file, and how it was made (the exact command, seed, steps, duration, the sha256 of the checkpoint it came from).
:func:`unpack` verifies the files and writes an ordinary vgbench checkpoint (float32 weights that are the bf16
values), which `vgbench sample` and `vgbench eval` read like any other.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from vgbench import cache
from vgbench.errors import InputError

FORMAT = "vgbench-pretrained/1"
FOLDER = Path(__file__).parent / "pretrained" / "quickstart"
PARTS = ("vqvae", "prior")


def pack(checkpoint: str | Path, dest: str | Path, made_by: dict) -> dict:
    """Split a prior checkpoint into ``dest``/{vqvae,prior}.bf16.pt and pretrained.json; returns the manifest."""
    from vgbench.models import checkpoint as ckpt_mod

    ck = ckpt_mod.load(checkpoint)
    if ck.vqvae is None:
        raise InputError(f"{checkpoint}: a VQ-VAE checkpoint; the pretrained quickstart model is a prior checkpoint")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    files = {}
    for part in PARTS:
        state = {
            k[len(part) + 1 :]: (v.to(torch.bfloat16) if v.is_floating_point() else v).contiguous()
            for k, v in ck.model.items()
            if k.startswith(part + ".")
        }
        path = dest / f"{part}.bf16.pt"
        with cache.atomic_path(path) as tmp, open(tmp, "wb") as f:
            torch.save(state, f)
        files[part] = {"file": path.name, "sha256": cache.sha256_file(path), "bytes": path.stat().st_size}
    manifest = {
        "format": FORMAT,
        "card": ck.card,
        "arch": ck.arch,
        "config": ck.config,
        "vqvae": ck.vqvae,
        "files": files,
        "made_by": {**made_by, "checkpoint_sha256": ck.sha256, "steps": ck.step},
        "weights": "floating tensors stored as bf16 (the unpacked checkpoint holds their float32 values)",
    }
    cache.atomic_write_bytes(dest / "pretrained.json", (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode())
    return manifest


def manifest(folder: str | Path = FOLDER) -> dict:
    path = Path(folder) / "pretrained.json"
    if not path.is_file():
        raise InputError(f"{path}: no pretrained quickstart model there (the package is incomplete: reinstall it)")
    data = json.loads(path.read_text())
    if data.get("format") != FORMAT:
        raise InputError(f"{path}: format {data.get('format')!r}, expected {FORMAT!r}")
    return data


def unpack(dest: str | Path, folder: str | Path = FOLDER) -> Path:
    """Verify the shipped files and write them as one vgbench prior checkpoint ``dest`` (float32); returns it."""
    from vgbench.models import checkpoint as ckpt_mod

    folder, m = Path(folder), manifest(folder)
    state = {}
    for part in PARTS:
        info = m["files"][part]
        path = folder / info["file"]
        cache.verify_file(path, info["sha256"], info["bytes"], remedy="reinstall vgbench: the shipped file changed")
        part_state = torch.load(path, map_location="cpu", weights_only=True)
        state.update({f"{part}.{k}": (v.float() if v.is_floating_point() else v) for k, v in part_state.items()})
    ck = ckpt_mod.Checkpoint(path=folder, sha256="", card=m["card"], arch=m["arch"], config=m["config"], model=state,
                             vqvae=m["vqvae"])  # fmt: skip
    net = ckpt_mod.build(ck)
    ckpt_mod.save(dest, net, m["card"], m["config"], vqvae=m["vqvae"],
                  meta={"step": m["made_by"]["steps"], "pretrained": m["made_by"]})  # fmt: skip
    return Path(dest)
