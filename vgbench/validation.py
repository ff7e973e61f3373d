"""One validation of video sets, shared by ``vgbench eval`` and ``vgbench doctor``.

``doctor`` used to pass sets that ``eval`` refused a minute later; now both apply the rules of this module, with
the same messages:

- per video (:func:`clip_problem`, :func:`finite_problem`, :func:`range_problem`): at least the protocol's clip
  length and the network's minimum of frames, the frame size a protocol without resizing needs, the shape of the
  set's first video, finite values inside the set's value range;
- per set (:func:`set_problems`): at least two videos (a covariance, a split), and a declared range that the
  values contradict in a way that is almost surely a mistake (a whole set declared -1..1 with no value below 0
  is [0, 1] data read as [-1, 1], which gives a plausible but wrong FVD): a warning, noted in the result;
- between the compared sets (:func:`pair_problems`): clip shapes (T, H, W) after the protocol's cut. A protocol
  that fixes them refuses a mismatch; otherwise it is a warning, noted in the result.

Cheap before expensive: :func:`survey` reads a whole set before any network runs wherever the format allows it
cheaply (arrays: min/max and finiteness over a memory map in chunks, so a bad value in the last video is found
before the first is extracted; video files: their headers; frame folders: file counts and one image each) and
reports every problem; ``eval`` raises the first, ``doctor`` lists them all.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from vgbench.errors import InputError
from vgbench.metrics.protocols import Need
from vgbench.tensors import RANGE_TOL, RANGES

if TYPE_CHECKING:
    from vgbench.video import SampleSet

log = logging.getLogger(__name__)

MAX_LISTED = 20  # problems listed per set; more are counted


def need_for(name: str, protocol, role: str = "samples") -> Need:
    """The :class:`Need` of protocol ``protocol`` named ``name`` (each protocol class states its own,
    :meth:`vgbench.metrics.protocols.Protocol.need`); ``role`` "reference" differs only for a long-video FVD
    protocol whose real clips start at random."""
    return protocol.need(name, role)


@dataclass
class Problem:
    """One kind of problem in a set: the message about the first video that has it, and how many have it."""

    rule: str
    message: str
    summary: str = ""  # about every video with the problem; "{count}" is filled in
    count: int = 1
    fatal: bool = True  # False: a warning (evaluated, and noted in the result)

    def text(self) -> str:
        """The message, or the summary and the first example when several videos have the problem."""
        if self.count > 1 and self.summary:
            return f"{self.summary.format(count=self.count)}; first: {self.message}"
        return self.message


# ----------------------------------------------------------------------------------------------------------
# Rules: pure functions of what was read


def clip_problem(name: str, shape: tuple, need: Need, first: tuple | None = None) -> Problem | None:
    """The first problem of a video of ``shape`` (T, H, W, C) (T None: not known yet) under ``need``.

    ``first`` is the set's first video's shape after the protocol's cut: every video must share it."""
    t, h, w = shape[0], shape[1], shape[2]
    if need.frames is not None and t is not None and t < need.frames:
        return Problem(
            "frames",
            f"{name}: {t} frames, but the protocol takes the first {need.frames}; use longer videos or another "
            "protocol",
            f"{{count}} videos have fewer than the {need.frames} frames protocol {need.metric} takes",
        )
    used = t if need.frames is None or t is None else min(t, need.frames)
    if used is not None and used < need.min_frames:
        return Problem(
            "min_frames",
            f"{name}: {used} frames; at least {need.min_frames} are needed{need.min_reason}",
            f"{{count}} videos have fewer than {need.min_frames} frames; {need.metric} cannot score them",
        )
    if need.size is not None and (h, w) != (need.size, need.size):
        return Problem(
            "size",
            f"{name}: frames of {h}x{w}; protocol {need.metric} does not resize and reads {need.size}x{need.size}",
            f"{{count}} videos are not {need.size}x{need.size}",
        )
    cut = (used, *shape[1:])
    if first is not None and None not in first[1:3] and tuple(cut[1:3]) != tuple(first[1:3]):
        return Problem(
            "mixed",
            f"{name}: frames of {h}x{w} differ from the first video's {first[1]}x{first[2]}; all videos in a set "
            "must share frame count and size (resize them to one size)",
            "{count} videos differ in frame count or size from the first",
        )
    if first is not None and None not in (cut[0], first[0]) and cut != first:
        return Problem(
            "mixed",
            f"{name}: shape (T, H, W, C) = {cut} differs from the first video's {first}; all videos in a set must "
            "share frame count and size (or use a protocol with a fixed clip length)",
            "{count} videos differ in frame count or size from the first",
        )
    return None


def cut_shape(shape: tuple, need: Need) -> tuple:
    """A video's shape (T, H, W, C) after the protocol takes its first ``need.frames`` frames."""
    t = shape[0]
    return (t if need.frames is None or t is None else min(t, need.frames), *shape[1:])


def finite_problem(batch: np.ndarray, name_of: Callable[[int], str], offset: int) -> Problem | None:
    """NaN or inf in a float batch (B, T, H, W, C) whose first video is number ``offset``."""
    if not np.issubdtype(batch.dtype, np.floating):
        return None
    bad = ~np.isfinite(batch)
    if not bad.any():
        return None
    idx = offset + int(np.argwhere(bad)[0][0])
    return Problem(
        "finite",
        f"{name_of(idx)}: {int(bad.sum())} NaN or inf values in this batch; fix the generator's output (clip or "
        "drop the sample)",
        "{count} videos hold NaN or inf values",
        count=int(bad.reshape(len(batch), -1).any(axis=1).sum()),
    )


def range_problem(
    path, lo: float, hi: float, first: int, last: int, value_range: str, source: str, dtype
) -> Problem | None:
    """Values in [lo, hi] of videos ``first..last`` outside the set's range (declared, detected or the dtype's)."""
    if np.dtype(dtype) == np.uint8:
        return None
    rlo, rhi = RANGES[value_range]
    if lo >= rlo - RANGE_TOL and hi <= rhi + RANGE_TOL:
        return None
    return Problem(
        "range",
        f"{path}: values in [{lo:.4g}, {hi:.4g}] at videos {first}..{last} lie outside the {source} range "
        f"{value_range} ([{rlo:g}, {rhi:g}]). Clip the samples, or pass the right --range (0-255, 0-1, -1-1).",
        "values of {count} videos lie outside the range",
        count=last - first + 1,
    )


def set_problems(
    path, scan: SetScan, value_range: str, source: str, dtype: str, need: Need, per_trial: int | None = None
) -> list[Problem]:
    """Problems of a whole set: too few videos (per trial), and ranges its values almost surely contradict
    (warnings)."""
    out = []
    n = scan.total if per_trial is None else per_trial
    if n < need.min_count:
        each = " per trial" if per_trial is not None and per_trial != scan.total else ""
        out.append(
            Problem(
                "count",
                f"{path}: {n} video{'s' if n != 1 else ''}{each}; {need.metric} needs at least {need.min_count} "
                "(a covariance cannot be estimated from fewer); provide more videos",
            )
        )
    if not scan.has_values:
        return out
    lo, hi = scan.lo, scan.hi
    whole = "the whole set" if scan.videos == scan.total else f"the {scan.videos} videos read"
    if dtype == "uint8":
        if hi <= 1:
            out.append(
                Problem(
                    "range_guess",
                    f"{path}: uint8 data with maximum {hi:g} in {whole}: probably [0, 1] floats cast to uint8 "
                    "(nearly black videos); save them as x * 255 rounded, or as floats with --range 0-1",
                    fatal=False,
                )
            )
        return out
    if value_range == "-1-1" and lo >= -RANGE_TOL:
        out.append(
            Problem(
                "range_guess",
                f"{path}: no value below 0 in {whole} ([{lo:.4g}, {hi:.4g}]), but its range is {source} as -1-1: "
                "probably [0, 1] data, which read as [-1, 1] gives a plausible but wrong number; pass --range 0-1 "
                "if that is what it is",
                fatal=False,
            )
        )
    elif value_range == "0-255" and hi <= 1 + RANGE_TOL:
        out.append(
            Problem(
                "range_guess",
                f"{path}: all values in [{lo:.4g}, {hi:.4g}] in {whole}, but its range is {source} as 0-255: "
                "probably [0, 1] data (nearly black videos as read); pass --range 0-1 if that is what it is",
                fatal=False,
            )
        )
    return out


def pair_problems(samples: tuple | None, reference: tuple | None, need: Need, roles=("samples", "reference")):
    """The clip shapes (T, H, W) of the two compared sets after the protocol's cut (None where a set's shape, or
    one of its axes, is not known). A difference is refused on an axis the protocol fixes (its clip length, or the
    frame size of a protocol that does not resize); otherwise it is a warning."""
    if samples is None or reference is None:
        return []
    out = []
    for axes, what, fixed in ((slice(0, 1), "frame count", need.frames), (slice(1, 3), "frame size", need.size)):
        a, b = tuple(samples[axes]), tuple(reference[axes])
        if None in a or None in b or a == b:
            continue
        shown = [" x ".join("?" if v is None else str(v) for v in x[:3]) for x in (samples, reference)]
        advice = (
            f"protocol {need.metric} fixes the {what}; make both sets match it"
            if fixed is not None
            else "the metric then also measures that difference, and the number is not comparable with ones made "
            "on matching sets; cut or resize one set to the other's shape, or use a protocol with a fixed clip length"
        )
        out.append(
            Problem(
                "pair",
                f"{roles[0]} are {shown[0]} (T x H x W), {roles[1]} {shown[1]}: the sets differ in {what}; {advice}",
                fatal=fixed is not None,
            )
        )
    return out


# ----------------------------------------------------------------------------------------------------------
# Surveys: what one pass over a set saw


@dataclass
class SetScan:
    """What a pass over (part of) a set saw: clip shapes, value extremes, and the problems found on the way."""

    total: int  # videos in the set
    videos: int = 0  # videos read
    shapes: dict = field(default_factory=dict)  # (T, H, W, C) as stored -> count (T None: unknown)
    cut: dict = field(default_factory=dict)  # (T, H, W, C) after the protocol's cut -> count
    has_values: bool = False  # whether every read video's values were seen
    lo: float = np.inf
    hi: float = -np.inf
    sum: float = 0.0
    n_values: int = 0
    constant: int = 0  # videos holding a single value
    problems: list[Problem] = field(default_factory=list)

    def add(self, problem: Problem | None) -> None:
        """Record a problem, merging it into an earlier one of the same rule."""
        if problem is None:
            return
        for p in self.problems:
            if p.rule == problem.rule:
                p.count += problem.count
                return
        self.problems.append(problem)

    @property
    def shape(self) -> tuple | None:
        """The set's clip shape (T, H, W) as the metric reads it (after the protocol's cut) when uniform, else
        None."""
        return tuple(next(iter(self.cut))[:3]) if len(self.cut) == 1 else None

    def count_shape(self, raw: tuple, cut: tuple, k: int) -> None:
        """Count ``k`` videos stored as ``raw`` (T, H, W, C) and read as ``cut``."""
        self.shapes[raw] = self.shapes.get(raw, 0) + k
        self.cut[cut] = self.cut.get(cut, 0) + k

    def add_extremes(self, shape: tuple, k: int, lo: float, hi: float) -> None:
        """Add ``k`` videos read as clip shape ``shape`` (T, H, W, C) whose values lie in [lo, hi]."""
        self.count_shape(shape, shape, k)
        self.videos += k
        self.lo, self.hi = min(self.lo, lo), max(self.hi, hi)
        self.has_values = True

    def add_values(self, batch: np.ndarray) -> tuple[float, float]:
        """Add the extremes, sum and constant videos of a raw batch (B, T, H, W, C); returns its (min, max)."""
        flat = batch.reshape(len(batch), -1)
        vmin, vmax = flat.min(axis=1), flat.max(axis=1)
        lo, hi = float(vmin.min()), float(vmax.max())
        self.lo, self.hi = min(self.lo, lo), max(self.hi, hi)
        self.sum += float(flat.sum(dtype=np.float64))
        self.n_values += flat.size
        self.constant += int((vmin == vmax).sum())
        return lo, hi


def survey(
    s: SampleSet,
    need: Need,
    stop: int | None = None,
    values: bool | None = None,
    fail_fast: bool = False,
    per_trial: int | None = None,
) -> SetScan:
    """Read videos [0, ``stop``) of ``s`` as cheaply as its format allows and apply every rule.

    ``values``: read every value (None: where that is cheap, i.e. arrays; video files are then checked by their
    headers (frame size; a header's frame count is not trusted), frame folders by file counts and one image each,
    and their values as they are decoded for the network). ``fail_fast`` stops at the first fatal problem
    (``eval``); otherwise every problem is collected (``doctor``). ``per_trial``: the videos each trial reads
    (default: all), which must be at least ``need.min_count``.
    """
    stop = s.count if stop is None else min(stop, s.count)
    scan = SetScan(total=s.count)
    count = set_problems(s.path, scan, "", "", "", need, per_trial)  # before reading anything
    if count and fail_fast:
        scan.problems = count
        return scan
    values = s._array is not None if values is None else values
    first: tuple | None = None
    pos = 0
    for shape, k, batch in _clips(s, stop, values):
        problem = clip_problem(s.name_of(pos), shape, need, first)
        if problem is not None:
            problem.count = k
            scan.add(problem)
        else:
            first = first or cut_shape(shape, need)
            if batch is not None:
                batch = batch if need.frames is None else batch[:, : need.frames]
                bad = finite_problem(batch, s.name_of, pos)
                scan.add(bad)
                if bad is None:
                    lo, hi = scan.add_values(batch)
                    scan.add(range_problem(s.path, lo, hi, pos, pos + k - 1, s.value_range, s.range_source, s.dtype))
        scan.count_shape(shape, cut_shape(shape, need), k)
        pos += k
        scan.videos = pos
        if fail_fast and any(p.fatal for p in scan.problems):
            break
    scan.has_values = values and scan.n_values > 0
    for p in set_problems(s.path, scan, s.value_range, s.range_source, s.dtype, need, per_trial):
        scan.add(p)
    return scan


def _clips(s: SampleSet, stop: int, values: bool):
    """(shape (T, H, W, C), number of videos, raw batch or None) covering videos [0, stop); batches only when
    ``values``, otherwise what the format tells without decoding (T None where it does not tell it reliably)."""
    if values:
        for raw in s.raw_videos(0, stop):
            yield raw.shape[1:], len(raw), raw
        return
    if s._array is not None:
        if stop:
            yield tuple(s._array.shape[1:]), stop, None
        return
    from vgbench.decode import decode_image, probe_video

    if s._dataset is not None:
        shape = tuple(s._dataset[0]["video"].shape) if stop else None
        for _ in range(stop):
            yield shape, 1, None
        return
    for p in s.files[:stop]:
        if s.kind == "videos":
            yield probe_video(p), 1, None
        else:
            images = s.frame_files(p)
            yield (len(images), *decode_image(images[0]).shape), 1, None


def check(s: SampleSet, need: Need, stop: int | None = None, per_trial: int | None = None) -> list[str]:
    """``eval``'s pre-scan of videos [0, ``stop``) of ``s`` before any network runs: raises the first fatal problem
    as an :class:`InputError`; returns the warnings (to log and note in the result). The scan is kept as
    ``s.scan``."""
    scan = survey(s, need, stop, fail_fast=True, per_trial=per_trial)
    s.scan = scan
    raise_fatal(scan.problems, "" if scan.videos >= scan.total else f" (`vgbench doctor {s.path}` lists them all)")
    return [p.text() for p in scan.problems]


def after_reading(s: SampleSet | None, need: Need) -> list[str]:
    """Warnings about a set's values that only reading it for the network could show, for sets whose values the
    pre-scan did not read (video files, frame folders, dataset splits): e.g. uint8 videos whose maximum is 1."""
    if s is None or s.seen is None or (s.scan is not None and s.scan.has_values):
        return []
    return [p.text() for p in set_problems(s.path, s.seen, s.value_range, s.range_source, s.dtype, need) if not p.fatal]


def raise_fatal(problems: list[Problem], hint: str = "") -> None:
    """Raise the first fatal problem of ``problems`` as an :class:`InputError`."""
    fatal = [p for p in problems if p.fatal]
    if fatal:
        raise InputError(fatal[0].text() + hint)
