"""The quickstart's pretrained models (issue 19): a prior checkpoint made by ``vgbench train``, shipped in bf16.

A vgbench prior checkpoint holds its VQ-VAE. For shipping, its float32 weights are cast to bf16 and split in key order
into ``part-<i>.bf16.pt`` files (``torch.save`` dicts of tensors, read back with ``weights_only=True``), each under
:data:`MAX_FILE_BYTES` so that no file of the repository passes 1 MB. Beside them, ``pretrained.json`` holds the
card and resolved configs, the sha256 and size of each file, and how the checkpoint was made: the exact commands,
seed, steps, duration and the sha256 of the checkpoint it came from. :func:`unpack` verifies every file and writes
an ordinary vgbench checkpoint (float32 weights that are the bf16 values), which ``vgbench sample`` and
``vgbench eval`` read like any other.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import torch

from vgbench import cache
from vgbench.errors import InputError

FORMAT = "vgbench-pretrained/2"
FOLDER = Path(__file__).parent / "pretrained" / "quickstart"
MAX_FILE_BYTES = 950_000  # under 1 MB with room for torch.save's zip framing


def _serialise(state: dict) -> bytes:
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def split_state(state: dict, limit: int = MAX_FILE_BYTES) -> list[dict]:
    """``state`` in key order as consecutive dicts whose serialised size is each under ``limit`` bytes."""
    parts, current = [], {}
    for key, value in state.items():
        one = len(_serialise({key: value}))
        if one > limit:
            raise InputError(f"tensor {key!r} alone takes {one} bytes, over the {limit}-byte file limit")
        if current and len(_serialise({**current, key: value})) > limit:
            parts.append(current)
            current = {}
        current[key] = value
    return [*parts, current] if current else parts


def pack(checkpoint: str | Path, dest: str | Path, made_by: dict) -> dict:
    """Write a prior checkpoint's weights as bf16 ``dest``/part-<i>.bf16.pt files and ``pretrained.json``."""
    from vgbench.models import checkpoint as ckpt_mod

    ck = ckpt_mod.load(checkpoint)
    if ck.vqvae is None:
        raise InputError(f"{checkpoint}: a VQ-VAE checkpoint; the pretrained quickstart model is a prior checkpoint")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.glob("part-*.bf16.pt"):  # a re-pack replaces the set whole
        old.unlink()
    # float32 weights as bf16; other tensors (float64 statistics such as the data variance, integer counters) as
    # they are: they are tiny, and a statistic rounded to bf16 would shift every number computed from it
    state = {k: (v.to(torch.bfloat16) if v.dtype == torch.float32 else v).contiguous() for k, v in ck.model.items()}
    files = []
    for i, part in enumerate(split_state(state)):
        path = dest / f"part-{i}.bf16.pt"
        cache.atomic_write_bytes(path, _serialise(part))
        files.append({"file": path.name, "sha256": cache.sha256_file(path), "bytes": path.stat().st_size,
                      "tensors": len(part)})  # fmt: skip
    manifest = {
        "format": FORMAT,
        "card": ck.card,
        "arch": ck.arch,
        "config": ck.config,
        "vqvae": ck.vqvae,
        "files": files,
        "made_by": {**made_by, "checkpoint_sha256": ck.sha256, "steps": ck.step},
        "weights": "float32 tensors stored as bf16 (the unpacked checkpoint holds their float32 values), the others "
        "as they were",
    }
    cache.atomic_write_bytes(dest / "pretrained.json", (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode())
    return manifest


def manifest(folder: str | Path = FOLDER) -> dict:
    """The shipped ``pretrained.json`` (an :class:`InputError` naming the path when it is missing or foreign)."""
    path = Path(folder) / "pretrained.json"
    if not path.is_file():
        raise InputError(f"{path}: no pretrained quickstart model there (the installed package is incomplete: "
                         "reinstall vgbench)")  # fmt: skip
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: not a readable pretrained manifest ({e}); reinstall vgbench") from e
    if data.get("format") != FORMAT:
        raise InputError(f"{path}: format {data.get('format')!r}, expected {FORMAT!r}; reinstall vgbench")
    return data


def unpack(dest: str | Path, folder: str | Path = FOLDER) -> Path:
    """Verify the shipped files and write them as one vgbench prior checkpoint ``dest`` (float32); returns it."""
    from vgbench.models import checkpoint as ckpt_mod

    folder, m = Path(folder), manifest(folder)
    state = {}
    for info in m["files"]:  # sizes and hashes before any bytes are unpickled
        cache.verify_file(folder / info["file"], info["sha256"], info["bytes"],
                          remedy="reinstall vgbench: a shipped pretrained file changed")  # fmt: skip
    for info in m["files"]:
        part = torch.load(folder / info["file"], map_location="cpu", weights_only=True)
        state.update({k: (v.float() if v.dtype == torch.bfloat16 else v) for k, v in part.items()})
    ck = ckpt_mod.Checkpoint(path=folder, sha256="", card=m["card"], arch=m["arch"], config=m["config"], model=state,
                             vqvae=m["vqvae"])  # fmt: skip
    net = ckpt_mod.build(ck)  # a strict load: a missing or extra tensor is an error here, not a wrong model later
    ckpt_mod.save(dest, net, m["card"], m["config"], vqvae=m["vqvae"],
                  meta={"step": m["made_by"]["steps"], "pretrained": m["made_by"]})  # fmt: skip
    return Path(dest)
