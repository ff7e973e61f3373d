"""Inspect a sample set before evaluating it: counts, shapes, dtype, value range and likely mistakes.

``doctor`` applies exactly the checks ``eval`` applies (:mod:`vgbench.validation`, and the metric's own count
planning), under the protocol given with ``--metric``, to every video rather than stopping at the first problem:
an ``error`` is what ``eval`` would refuse, a ``warning`` what it would evaluate and note in the result. Hints
(detected range, small N, constant videos, the resize) are information only.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from vgbench import cards, validation
from vgbench.errors import ProtocolError, VgbenchError
from vgbench.metrics.protocols import FVDProtocol, ISProtocol
from vgbench.models.i3d import FEATURE_DIM
from vgbench.video import SampleSet

SMALL_N = 256  # below this FVD is strongly biased and unstable (metrics.md §13)


@dataclass
class Report:
    """What ``vgbench doctor`` prints."""

    path: str
    kind: str
    count: int
    dtype: str
    range: str
    range_source: str
    frames: dict
    sizes: dict
    min: float
    max: float
    mean: float
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # what `vgbench eval` would refuse
    hints: list[str] = field(default_factory=list)
    metric: str = ""  # the protocol checked against (metric.protocol)
    scanned: int = 0  # videos read (every one, or the first --limit)
    content_sha256: str = ""
    reference: dict | None = None  # the reference's report, with --reference

    @property
    def ok(self) -> bool:
        """True when ``eval`` would accept the set (and the pair, with a reference)."""
        return not self.errors and (self.reference is None or not self.reference["errors"])

    def text(self) -> str:
        """The human report ``vgbench doctor`` prints."""
        lines = _text(self)
        if self.reference is not None:
            lines += ["reference:"] + ["  " + line for line in _text(Report(**self.reference))]
        verdict = (
            f"eval under {self.metric} would accept this"
            if self.ok
            else f"eval under {self.metric} would refuse this: fix the errors above"
        )
        return "\n".join(lines + [verdict])

    def to_json(self) -> str:
        """The report as one JSON object."""
        return json.dumps(asdict(self))


def _text(r: Report) -> list[str]:
    part = "" if r.scanned >= r.count else f" (first {r.scanned} read)"
    lines = [
        f"{r.path}: {r.count} videos ({r.kind}){part}, dtype {r.dtype}, range {r.range} ({r.range_source})",
        f"  frames: {r.frames}",
        f"  sizes (HxWxC): {r.sizes}",
        f"  values: min {r.min:.4g}, max {r.max:.4g}, mean {r.mean:.4g}",
    ]
    lines += [f"  error: {e}" for e in r.errors]
    lines += [f"  warning: {w}" for w in r.warnings]
    lines += [f"  hint: {h}" for h in r.hints]
    if not (r.errors or r.warnings):
        lines.append("  no errors, no warnings")
    return lines


def _plan(s: SampleSet, role: str, name: str, p, allow_fewer: bool) -> tuple[int | None, str | None]:
    """(videos per trial, or None; the planning error, or None), as ``eval`` plans the metric's trials."""
    try:
        if isinstance(p, ISProtocol):
            from vgbench.metrics.inception import plan_samples

            chunks, _, _ = plan_samples(s.count, p, name, allow_fewer)
        else:
            from vgbench.metrics.planning import plan_chunks

            per = p.num_samples if role == "samples" else p.num_reference
            chunks, _, _ = plan_chunks(s.count, per, p.trials, role, name, allow_fewer)
    except (ProtocolError, VgbenchError) as exc:
        return None, str(exc)
    return min(b - a for a, b in chunks), None


def _inspect_set(
    path, role: str, value_range: str | None, limit: int | None, name: str, p, allow_fewer: bool
) -> tuple[Report, validation.SetScan, validation.Need]:
    s = SampleSet.open(path, value_range)
    need = validation.need_for(name, p)
    per_trial, plan_error = _plan(s, role, name, p, allow_fewer)
    stop = s.count if limit is None else min(limit, s.count)
    scan = validation.survey(s, need, stop, values=True, per_trial=per_trial)
    errors = ([plan_error] if plan_error else []) + [x.text() for x in scan.problems if x.fatal]
    warnings = [x.text() for x in scan.problems if not x.fatal]
    hints = _hints(s, scan, p)
    frames, sizes = {}, {}
    for (t, h, w, c), k in scan.shapes.items():
        frames[t] = frames.get(t, 0) + k
        sizes[f"{h}x{w}x{c}"] = sizes.get(f"{h}x{w}x{c}", 0) + k
    report = Report(
        str(s.path),
        s.kind,
        s.count,
        s.dtype,
        s.value_range,
        s.range_source,
        dict(sorted(frames.items())),
        dict(sorted(sizes.items())),
        scan.lo if scan.n_values else float("nan"),
        scan.hi if scan.n_values else float("nan"),
        scan.sum / scan.n_values if scan.n_values else float("nan"),
        warnings,
        errors,
        hints,
        name,
        scan.videos,
        s.content_sha256(),
    )
    return report, scan, need


def _hints(s: SampleSet, scan: validation.SetScan, p) -> list[str]:
    out = []
    if s.range_source == "detected":
        out.append(f"float range {s.value_range} was detected, not declared; pass --range to be sure")
    if isinstance(p, FVDProtocol):
        if s.count <= FEATURE_DIM:
            out.append(
                f"N = {s.count} <= {FEATURE_DIM}: I3D covariances are singular; FVD is biased upwards and only "
                "comparable at equal N"
            )
        elif s.count < SMALL_N:
            out.append(f"N = {s.count} is small; FVD varies strongly between sample sets at this size")
        sizes = sorted({f"{h}x{w}" for _, h, w, _ in scan.shapes})
        if p.resize != "none" and any(x != f"{p.size}x{p.size}" for x in sizes):
            out.append(
                f"frames are resized to {p.size}x{p.size} for I3D (from {', '.join(sizes)}); the protocol fixes how"
            )
    if scan.constant:
        out.append(f"{scan.constant} videos are constant (a single value)")
    return out


def inspect(
    path: str,
    value_range: str | None = None,
    limit: int | None = None,
    metric: str = "fvd",
    reference: str | None = None,
    reference_range: str | None = None,
    allow_fewer: bool = False,
) -> Report:
    """Read a sample set (every video, or the first ``limit``) and report what ``eval --metric METRIC`` would
    refuse (errors), evaluate with a note (warnings), and hints; with ``reference``, also that set and the pair."""
    card, tag, p = cards.resolve_protocol(metric)
    if not isinstance(p, FVDProtocol | ISProtocol):
        raise VgbenchError(
            f"doctor checks the sample sets of fvd, fvd-star, r-fvd and is; {card.name} reads a checkpoint "
            "and a dataset split"
        )
    name = f"{card.name}.{tag}"
    report, scan, need = _inspect_set(path, "samples", value_range, limit, name, p, allow_fewer)
    if reference is not None:
        if isinstance(p, ISProtocol):
            raise VgbenchError(f"--reference does not apply to {name}: the Inception Score reads --samples only")
        ref_report, ref_scan, _ = _inspect_set(reference, "reference", reference_range, limit, name, p, allow_fewer)
        for problem in validation.pair_problems(scan.shape, ref_scan.shape, need):
            (report.errors if problem.fatal else report.warnings).append(problem.text())
        report.reference = asdict(ref_report)
    return report
