"""``vgbench check``: compare a results store with expected metric values, for CI regression gates.

EXPECTED (YAML or TOML) lists checks::

    checks:
      - name: demo-fvd              # optional, defaults to metric.protocol
        metric: fvd
        protocol: official          # required: a number is only compared with one made the same way
        run: "demo: fast vs slow"   # optional: pick records of this run
        expected: 166.8
        tolerance: {rel: 0.001}     # or {abs: 0.5}
        mode: no_worse              # or within, or interval

``no_worse`` fails when the value got worse by more than the tolerance (the metric card's direction decides what
worse means); ``within`` fails when it moved either way; ``interval`` fails only when the record is worse than
expected beyond its own bootstrap interval (the interval's better end is worse than the expected value by more than
the tolerance, which may then be ``{abs: 0}``): the record's measured noise over the evaluated clips sets the margin.
It does not cover another training run (another seed or thread count), so a gate on trained models keeps a
tolerance as wide as the training spread measured. A record without an interval fails in this mode, saying so.
A missing metric, or one measured only under another protocol or with changed protocol parameters, is a failure
with its reason, never a pass.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import yaml

from vgbench import cards
from vgbench.errors import CardError, UnknownNameError
from vgbench.readers import reading

MODES = ("no_worse", "within", "interval")


@dataclass(frozen=True)
class CheckSpec:
    """One entry of EXPECTED as written."""

    metric: str
    protocol: str
    expected: float
    tolerance: dict[str, float]  # exactly one of {abs: X} or {rel: X}
    mode: Literal["no_worse", "within", "interval"] = "no_worse"
    name: str = ""  # default: metric.protocol
    run: str | None = None  # pick records of this run only


@dataclass(frozen=True)
class CheckFile:
    """EXPECTED: the checks to run."""

    checks: tuple[CheckSpec, ...]


@dataclass
class Expectation:
    """One line of EXPECTED."""

    name: str
    metric: str
    protocol: str
    expected: float
    tol_abs: float | None
    tol_rel: float | None
    mode: str
    run: str | None = None

    def tolerance(self) -> float:
        """The allowed deviation in the metric's units."""
        if self.tol_abs is not None:
            return self.tol_abs
        return abs(self.expected) * self.tol_rel


@dataclass
class Outcome:
    """The verdict for one expectation."""

    name: str
    passed: bool
    reason: str
    value: float | None
    expected: float
    tolerance: float


def _parse(path: Path) -> object:
    """EXPECTED's content, YAML or TOML by suffix; any reading or syntax error is one line naming the file and,
    for syntax errors, the line and column."""
    with reading(path, "a check file (YAML, or TOML by its .toml suffix)"):
        text = path.read_text(encoding="utf-8")
    if not text.strip():
        raise CardError(path, "<file>", "empty file; expected a mapping with a list of 'checks'")
    if path.suffix == ".toml":
        import tomllib

        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise CardError(path, "<file>", f"not valid TOML ({exc})") from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or " ".join(str(exc).split())
        raise CardError(path, "<file>", f"not valid YAML{where}: {problem}") from exc


def load_expected(path: str | Path) -> list[Expectation]:
    """Parse EXPECTED (YAML or TOML by suffix) with the card machinery: errors name the file and the field."""
    path = Path(path)
    data = _parse(path)
    spec = cards.load_as(CheckFile, path, data)
    if not spec.checks:
        raise CardError(path, "checks", "required: a non-empty list of checks")
    out = []
    for i, c in enumerate(spec.checks):
        tol = c.tolerance
        if len(tol) != 1 or next(iter(tol)) not in ("abs", "rel"):
            raise CardError(path, f"checks[{i}].tolerance", "must be a mapping with exactly one of abs, rel", got=tol)
        if next(iter(tol.values())) < 0:
            raise CardError(path, f"checks[{i}].tolerance", "must not be negative", got=tol)
        try:
            cards.resolve_protocol(c.metric, c.protocol)  # unknown names get did-you-mean errors
        except UnknownNameError as exc:
            raise UnknownNameError(f"{path}: field 'checks[{i}]': {exc}") from exc
        name = c.name or f"{c.metric}.{c.protocol}"
        out.append(Expectation(name, c.metric, c.protocol, c.expected, tol.get("abs"), tol.get("rel"), c.mode, c.run))
    return out


def evaluate_check(exp: Expectation, records: list[dict]) -> Outcome:
    """Judge one expectation against the latest matching record."""
    tol = exp.tolerance()
    same_metric = [r for r in records if r.get("metric") == exp.metric and (exp.run is None or r.get("run") == exp.run)]
    if not same_metric:
        where = f" in run '{exp.run}'" if exp.run else ""
        return Outcome(
            exp.name, False, f"missing: no {exp.metric} result{where} in the results store", None, exp.expected, tol
        )
    matching = [r for r in same_metric if r.get("protocol") == exp.protocol]
    if not matching:
        seen = sorted({r.get("protocol") for r in same_metric})
        return Outcome(
            exp.name,
            False,
            f"protocol mismatch: {exp.metric} was measured under {seen}, expected '{exp.protocol}'",
            None,
            exp.expected,
            tol,
        )
    r = matching[-1]
    card, tag, p = cards.resolve_protocol(exp.metric, exp.protocol)
    current = cards.protocol_hash(card.name, tag, p, card.card_version)
    if r.get("protocol_hash") != current:
        return Outcome(
            exp.name,
            False,
            f"protocol mismatch: the record's protocol hash {r.get('protocol_hash')} differs "
            f"from {exp.metric}.{exp.protocol}'s current {current} (its parameters changed)",
            r["value"],
            exp.expected,
            tol,
        )
    if r.get("off_protocol"):
        return Outcome(
            exp.name, False, "protocol mismatch: the record is marked off-protocol", r["value"], exp.expected, tol
        )
    value = float(r["value"])
    delta = value - exp.expected
    if exp.mode == "interval":
        iv = r.get("interval") or {}
        if "low" not in iv or "high" not in iv:
            return Outcome(
                exp.name,
                False,
                "no interval: the record has none (made by a vgbench before intervals, or with --no-interval); "
                "evaluate it again, or use mode within / no_worse",
                value,
                exp.expected,
                tol,
            )
        best = iv["high"] if card.higher_is_better else iv["low"]  # the record's most favourable plausible value
        worse = (exp.expected - best) if card.higher_is_better else (best - exp.expected)
        ok = worse <= tol
        where = f"{iv['level']:.0%} interval [{iv['low']:.6g}, {iv['high']:.6g}]"
        verdict = (
            f"worse than expected beyond its {where} by {worse:.6g} (allowed {tol:.6g})"
            if worse > 0
            else f"expected value within or beyond the better end of its {where}"
        )
        return Outcome(exp.name, ok, ("ok: " if ok else "regression: ") + verdict, value, exp.expected, tol)
    if exp.mode == "within":
        ok = abs(delta) <= tol
        verdict = f"moved by {delta:+.6g} (allowed ±{tol:.6g})"
    else:
        worse = -delta if card.higher_is_better else delta
        ok = worse <= tol
        verdict = f"{'worse' if worse > 0 else 'better or equal'} by {abs(delta):.6g} (allowed worse by {tol:.6g})"
    return Outcome(exp.name, ok, ("ok: " if ok else "regression: ") + verdict, value, exp.expected, tol)


def run_checks(expected: str | Path, records: list[dict]) -> list[Outcome]:
    """Every expectation of EXPECTED judged against ``records``."""
    return [evaluate_check(e, records) for e in load_expected(expected)]


def summary(outcomes: list[Outcome]) -> str:
    """Human summary, one line per check and a closing count."""
    lines = []
    for o in outcomes:
        val = "—" if o.value is None else f"{o.value:.6g}"
        lines.append(f"{'PASS' if o.passed else 'FAIL'}  {o.name}: {val} vs expected {o.expected:.6g}  {o.reason}")
    failed = sum(not o.passed for o in outcomes)
    lines.append(f"{len(outcomes) - failed} passed, {failed} failed")
    return "\n".join(lines)


def to_json(outcomes: list[Outcome]) -> str:
    """Machine-readable outcomes."""
    return json.dumps({"passed": all(o.passed for o in outcomes), "checks": [asdict(o) for o in outcomes]}, indent=2)


def to_junit(outcomes: list[Outcome]) -> str:
    """JUnit XML (one testcase per check) for CI systems."""
    suite = ET.Element(
        "testsuite", name="vgbench-check", tests=str(len(outcomes)), failures=str(sum(not o.passed for o in outcomes))
    )
    for o in outcomes:
        case = ET.SubElement(suite, "testcase", classname="vgbench.check", name=o.name)
        if not o.passed:
            ET.SubElement(case, "failure", message=o.reason).text = o.reason
    return ET.tostring(suite, encoding="unicode")
