"""vgbench checkpoints of the VideoGPT models: one self-describing file, safe to load, written atomically.

A checkpoint is a ``torch.save`` dict of tensors and plain Python values only, read back with
``torch.load(weights_only=True)`` (no code runs on load). It names its card and the *resolved* config the network
was built with, so a model is rebuilt exactly even if the card changes later; a prior's checkpoint also holds its
VQ-VAE (card, config, weights), so it is self-contained. ``train_state`` (optimiser, scheduler, scaler, every RNG,
step) is present in training checkpoints and dropped by :func:`export`.

Layout::

    {"format": "vgbench-checkpoint/1", "card": "gpt.bair", "arch": "videogpt_gpt", "config": {...},
     "vqvae": {"card": "vqvae.bair", "config": {...}} | None, "model": state_dict,
     "train_state": {...} | None, "meta": {"step": ..., "versions": ..., "created": ..., ...}}

The file's sha256 identifies it in every result record.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import errno
import functools
import logging
import os
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from vgbench import cache, cards, results
from vgbench.errors import InputError, VgbenchError

log = logging.getLogger(__name__)

FORMAT = "vgbench-checkpoint/1"


@dataclass
class Checkpoint:
    """A loaded checkpoint: what it holds and where it came from."""

    path: Path
    sha256: str
    card: str
    arch: str
    config: dict
    model: dict  # state_dict
    vqvae: dict | None = None  # {"card": name, "config": {...}} for priors
    train_state: dict | None = None
    meta: dict = field(default_factory=dict)

    @property
    def step(self) -> int:
        """Training steps done when it was written."""
        return int(self.meta.get("step", 0))

    @functools.cached_property
    def weights_sha256(self) -> str:
        """:func:`vgbench.cache.tensors_sha256` of the model's state_dict, hashed once per loaded checkpoint
        (describe() is called for every record a checkpoint enters; hashing a BAIR prior takes about a second)."""
        return cache.tensors_sha256(self.model)

    def describe(self) -> dict:
        """Provenance for result records: path, sha256, card, arch, step, VQ-VAE card, run and card overrides."""
        out = {"path": str(self.path.resolve()), "sha256": self.sha256, "card": self.card, "arch": self.arch}
        out["step"] = self.step
        out["weights_sha256"] = self.weights_sha256
        if self.vqvae:
            out["vqvae_card"] = self.vqvae["card"]
        if self.meta.get("run"):
            out["run"] = self.meta["run"]
        if self.meta.get("overrides"):  # `--set` changes to the card it was trained with: tables mark its numbers
            out["overrides"] = self.meta["overrides"]
        return out


def config_dict(config: Any) -> dict:
    """A config dataclass as plain values (tuples become lists), for the checkpoint and run records."""
    d = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}


def plain(obj: Any) -> Any:
    """Numpy scalars and arrays inside nested containers -> Python numbers and tensors (weights_only-loadable)."""
    import numpy as np

    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(plain(v) for v in obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(obj)
    return obj


def save(
    path: str | os.PathLike,
    model: torch.nn.Module,
    card: cards.ModelCard | str,
    config: Any,
    *,
    vqvae: dict | None = None,
    train_state: dict | None = None,
    meta: dict | None = None,
) -> str:
    """Write a checkpoint atomically and return its sha256.

    ``config`` is the resolved config the network was built with; ``vqvae`` = {"card", "config"} for priors (their
    VQ-VAE weights are part of ``model``'s state_dict). A failed write (full disk, Ctrl-C) leaves any previous file
    at ``path`` untouched and raises a VgbenchError saying so.
    """
    card = cards.model(card) if isinstance(card, str) else card
    payload = {
        "format": FORMAT,
        "card": card.name,
        "arch": card.arch,
        "config": config_dict(config),
        "vqvae": plain(vqvae),
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "train_state": plain(train_state),
        "meta": plain(
            {
                "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "versions": results.versions(),
                **(meta or {}),
            }
        ),
    }
    path = Path(path)
    try:
        with cache.atomic_path(path) as tmp, open(tmp, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        why = "the disk is full" if exc.errno == errno.ENOSPC else str(exc)
        kept = f"the previous {path.name} is intact" if path.exists() else "nothing was written"
        raise VgbenchError(f"could not write checkpoint {path}: {why}; {kept}. Free space and resume.") from exc
    return cache.sha256_file(path)


def load(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Read a vgbench checkpoint without running code from it; errors say what is wrong with the file."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such checkpoint")
    if path.is_dir():
        raise InputError(f"{path}: is a directory; give a checkpoint file (a run folder's checkpoints/*.pt)")
    try:
        with open(path, "rb") as f:  # torch reads a non-zip file as a legacy pickle, and its error advises
            if f.read(2) != b"PK":  # weights_only=False: a damaged or foreign file is named as such instead
                raise zipfile.BadZipFile("no zip archive signature")
        data = torch.load(path, map_location=map_location, weights_only=True)
    except (zipfile.BadZipFile, EOFError, RuntimeError) as exc:
        raise InputError(
            f"{path}: not a readable checkpoint ({path.stat().st_size} bytes; torch cannot open it as a saved "
            "archive): the file is truncated or not a vgbench checkpoint. An interrupted copy: copy it again; a run's "
            "older checkpoints are beside it. A public VideoGPT (Lightning) checkpoint is imported with "
            "`vgbench weights import CKPT --model CARD`."
        ) from exc
    except pickle.UnpicklingError as exc:
        raise InputError(
            f"{path}: refused: the file references Python objects beyond tensors and plain values "
            f"({str(exc).splitlines()[0][:200]}). It is not a vgbench checkpoint; nothing in it was run."
        ) from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        got = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise InputError(
            f"{path}: not a vgbench checkpoint (format {got!r}, expected {FORMAT!r}). A public VideoGPT checkpoint "
            "is imported with `vgbench weights import CKPT --model CARD`."
        )
    return Checkpoint(
        path=path,
        sha256=cache.sha256_file(path),
        card=data["card"],
        arch=data["arch"],
        config=data["config"],
        model=data["model"],
        vqvae=data.get("vqvae"),
        train_state=data.get("train_state"),
        meta=data.get("meta") or {},
    )


def build(ckpt: Checkpoint, device: str | torch.device = "cpu") -> torch.nn.Module:
    """The network a checkpoint describes, with its weights (strict: every key used, every shape equal)."""
    from vgbench.models import create

    card = cards.model(ckpt.card)
    if card.arch != ckpt.arch:
        raise InputError(
            f"{ckpt.path}: written for arch {ckpt.arch!r}, but card {card.name} now has arch {card.arch!r}; "
            "use the vgbench version that wrote it"
        )
    extra = {}
    if ckpt.vqvae:
        vq_card = cards.model(ckpt.vqvae["card"])
        extra["vqvae"] = create(vq_card, weights=False, **ckpt.vqvae["config"])
    model = create(card, weights=False, **ckpt.config, **extra)
    missing, unexpected = model.load_state_dict(ckpt.model, strict=False)
    if missing or unexpected:
        raise InputError(
            f"{ckpt.path}: does not fit card {card.name}: missing {sorted(missing)[:5]}"
            f"{' ...' if len(missing) > 5 else ''}, unexpected {sorted(unexpected)[:5]}"
            f"{' ...' if len(unexpected) > 5 else ''}"
        )
    return model.to(device)


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, Checkpoint]:
    """(network in eval mode, checkpoint) of a vgbench checkpoint file."""
    ckpt = load(path)
    model = build(ckpt, device).eval()
    return model, ckpt


def export(src: str | os.PathLike, dest: str | os.PathLike) -> str:
    """Copy a checkpoint without its training state (smaller, for sharing); returns the new sha256."""
    data = torch.load(Path(src), map_location="cpu", weights_only=True)
    data["train_state"] = None
    with cache.atomic_path(dest) as tmp, open(tmp, "wb") as f:
        torch.save(data, f)
    return cache.sha256_file(dest)
