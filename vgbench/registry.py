"""A small generic registry: names to objects, lazy ``"module:attr"`` targets, did-you-mean on a miss."""

from __future__ import annotations

import difflib
import importlib
import inspect
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

from vgbench.errors import UnknownNameError, VgbenchError

T = TypeVar("T")


def did_you_mean(kind: str, name: str, available: Iterable[str]) -> str:
    """The standard miss message: ``Unknown metric 'fdv'. Did you mean 'fvd'? Available: ...``."""
    available = sorted(available)
    msg = f"Unknown {kind} '{name}'."
    close = difflib.get_close_matches(name, available, n=3, cutoff=0.5)
    if close:
        msg += " Did you mean " + " or ".join(f"'{c}'" for c in close) + "?"
    msg += " Available: " + (", ".join(available) if available else "(none)") + "."
    return msg


def bind_options(fn: Callable, options: dict, owner: str) -> dict:
    """The options to pass to ``fn``: None means "not given" and is dropped; a given option that ``fn`` does not
    take is an error naming it (the CLI passes every option it has; each metric or dataset takes its own)."""
    accepted = inspect.signature(fn).parameters
    out = {}
    for key, value in options.items():
        if value is None:
            continue
        if key not in accepted:
            from vgbench.errors import InputError

            raise InputError(f"--{key.replace('_', '-')} does not apply to {owner}; leave it out")
        out[key] = value
    return out


class Registry(Generic[T]):
    """Maps names to objects; a value given as ``"package.module:attr"`` is imported on first use.

    Lazy targets keep ``vgbench --help`` from importing torch.
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T | str] = {}

    def register(self, name: str, target: T | str | None = None) -> Callable[[T], T] | T | str:
        """Register ``target`` under ``name``; without a target, act as a decorator."""
        if target is None:

            def deco(obj: T) -> T:
                self.register(name, obj)
                return obj

            return deco
        if name in self._items:
            raise VgbenchError(f"{self.kind} '{name}' is registered twice; names must be unique.")
        self._items[name] = target
        return target

    def get(self, name: str) -> T:
        """Return the object registered as ``name``, importing a lazy target on first access."""
        if name not in self._items:
            raise UnknownNameError(did_you_mean(self.kind, name, self._items))
        obj = self._items[name]
        if isinstance(obj, str) and ":" in obj:
            module, attr = obj.split(":", 1)
            obj = getattr(importlib.import_module(module), attr)
            self._items[name] = obj
        return obj  # type: ignore[return-value]

    def names(self) -> list[str]:
        """All registered names, sorted."""
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items


# Code objects a card may name (its ``fn`` or ``arch`` field); targets are lazy.
METRIC_FNS: Registry = Registry("metric function")
METRIC_FNS.register("frechet_video_distance", "vgbench.metrics.fvd:evaluate_fvd")
METRIC_FNS.register("inception_score", "vgbench.metrics.inception:evaluate_is")
METRIC_FNS.register("nmse", "vgbench.metrics.nmse:evaluate_nmse")
METRIC_FNS.register("bits_per_dim", "vgbench.metrics.bits_per_dim:evaluate_bits_per_dim")
METRIC_FNS.register("psnr", "vgbench.metrics.psnr_ssim:evaluate_psnr")
METRIC_FNS.register("ssim", "vgbench.metrics.psnr_ssim:evaluate_ssim")
METRIC_FNS.register("continuity", "vgbench.metrics.continuity:evaluate_continuity")

# The protocol dataclass each metric engine reads, by the same keys (torch-free, read whenever a card loads).
PROTOCOL_TYPES: Registry = Registry("metric protocol type")
PROTOCOL_TYPES.register("frechet_video_distance", "vgbench.metrics.protocols:FVDProtocol")
PROTOCOL_TYPES.register("inception_score", "vgbench.metrics.protocols:ISProtocol")
PROTOCOL_TYPES.register("nmse", "vgbench.metrics.protocols:NMSEProtocol")
PROTOCOL_TYPES.register("bits_per_dim", "vgbench.metrics.protocols:BitsPerDimProtocol")
PROTOCOL_TYPES.register("psnr", "vgbench.metrics.protocols:PSNRProtocol")
PROTOCOL_TYPES.register("ssim", "vgbench.metrics.protocols:SSIMProtocol")
PROTOCOL_TYPES.register("continuity", "vgbench.metrics.protocols:ContinuityProtocol")

# Model architectures: card -> network builders ``(card, weights=True, root=None, **overrides) -> nn.Module``,
# read by :func:`vgbench.models.create`.
ARCHS: Registry = Registry("model architecture")
ARCHS.register("i3d", "vgbench.models.i3d:from_card")
ARCHS.register("c3d", "vgbench.models.c3d:from_card")
ARCHS.register("videogpt_vqvae", "vgbench.models.vqvae:from_card")
ARCHS.register("videogpt_gpt", "vgbench.models.gpt:from_card")
ARCHS.register("videogpt_repo_vqvae", "vgbench.models.videogpt_repo:vqvae_from_card")
ARCHS.register("videogpt_repo_gpt", "vgbench.models.videogpt_repo:gpt_from_card")

# Checkpoint converters by format (a weight card's ``member_format``): path -> tensors, each beside its network.
CONVERTERS: Registry = Registry("checkpoint converter")
CONVERTERS.register("flax_pickle", "vgbench.models.i3d:convert_flax_checkpoint")

# Structure checks of published weight files, by architecture: (role, arrays, where, config) -> None or raise.
STRUCTURE_CHECKS: Registry = Registry("weight-file structure check")
STRUCTURE_CHECKS.register("c3d", "vgbench.models.c3d:check_file")

# Dataset preparation functions a dataset card's ``prepare`` field names.
DATASET_PREPARERS: Registry = Registry("dataset preparer")
for _name in ("bair", "ucf101", "tgif", "moving_mnist", "quickstart"):
    DATASET_PREPARERS.register(_name, f"vgbench.datasets.{_name}:prepare")
