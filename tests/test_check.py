"""`vgbench check`: passes clean results; fails on a regression, a missing metric, a protocol mismatch."""

import json
import xml.etree.ElementTree as ET

import pytest
from click.testing import CliRunner

from vgbench import cards
from vgbench.check import load_expected
from vgbench.cli import cli
from vgbench.errors import CardError, UnknownNameError


def rec(metric="fvd", protocol="official", value=100.0, run="ci", **kw):
    card, tag, p = cards.resolve_protocol(metric, protocol)
    return {
        "metric": metric,
        "protocol": protocol,
        "value": value,
        "run": run,
        "off_protocol": False,
        "protocol_hash": cards.protocol_hash(card.name, tag, p, card.card_version),
        **kw,
    }


EXPECTED = """
checks:
  - {name: fvd-demo, metric: fvd, protocol: official, run: ci, expected: 100.0, tolerance: {rel: 0.01}, mode: no_worse}
  - {metric: fvd-star, protocol: official, expected: 50.0, tolerance: {abs: 0.5}, mode: within}
"""


def invoke(tmp_path, records, expected=EXPECTED, suffix=".yaml", extra=()):
    (tmp_path / f"e{suffix}").write_text(expected)
    store = tmp_path / "r.jsonl"
    store.write_text("".join(json.dumps(r) + "\n" for r in records))
    return CliRunner().invoke(cli, ["check", str(tmp_path / f"e{suffix}"), "--results", str(store), *extra])


def test_clean_results_pass_and_reports_are_written(tmp_path):
    res = invoke(
        tmp_path,
        [rec(value=100.9), rec("fvd-star", value=50.3)],
        extra=["--junit", str(tmp_path / "j.xml"), "--json", str(tmp_path / "j.json")],
    )
    assert res.exit_code == 0, res.output
    assert "PASS  fvd-demo" in res.output and res.output.strip().endswith("2 passed, 0 failed")
    suite = ET.parse(tmp_path / "j.xml").getroot()
    assert suite.get("tests") == "2" and suite.get("failures") == "0"
    assert json.loads((tmp_path / "j.json").read_text())["passed"] is True


def test_planted_regression_fails(tmp_path):
    res = invoke(tmp_path, [rec(value=101.5), rec("fvd-star", value=50.0)])  # FVD worse by 1.5 > 1.0
    assert res.exit_code == 1
    assert "FAIL  fvd-demo: 101.5 vs expected 100  regression: worse by 1.5 (allowed worse by 1)" in res.output
    better = invoke(tmp_path, [rec(value=90.0), rec("fvd-star", value=49.0)])  # within: moved -1 > 0.5
    assert better.exit_code == 1 and "PASS  fvd-demo" in better.output and "moved by -1" in better.output


def test_missing_metric_fails(tmp_path):
    res = invoke(tmp_path, [rec(value=100.0)])
    assert res.exit_code == 1 and "missing: no fvd-star result in the results store" in res.output
    res = invoke(tmp_path, [rec(value=100.0, run="other"), rec("fvd-star", value=50.0)])
    assert "missing: no fvd result in run 'ci'" in res.output


def test_protocol_mismatch_fails(tmp_path):
    res = invoke(tmp_path, [rec(protocol="videogpt_paper", value=100.0), rec("fvd-star", value=50.0)])
    assert res.exit_code == 1
    assert "protocol mismatch: fvd was measured under ['videogpt_paper'], expected 'official'" in res.output
    changed = rec(value=100.0)
    changed["protocol_hash"] = "deadbeefdeadbeef"
    res = invoke(tmp_path, [changed, rec("fvd-star", value=50.0)])
    assert res.exit_code == 1 and "its parameters changed" in res.output
    res = invoke(tmp_path, [rec(value=100.0, off_protocol=True), rec("fvd-star", value=50.0)])
    assert "marked off-protocol" in res.output


def test_toml_and_bad_files(tmp_path):
    toml = '[[checks]]\nmetric = "fvd"\nprotocol = "official"\nexpected = 100.0\ntolerance = {rel = 0.01}\n'
    res = invoke(tmp_path, [rec(value=100.0)], expected=toml, suffix=".toml")
    assert res.exit_code == 0, res.output
    (tmp_path / "bad.yaml").write_text(
        "checks:\n  - {metric: fvd, protocol: official, expected: 1, tolerance: {pct: 1}}\n"
    )
    with pytest.raises(CardError, match=r"checks\[0\].tolerance': must be a mapping with exactly one of abs, rel"):
        load_expected(tmp_path / "bad.yaml")
    (tmp_path / "bad2.yaml").write_text(
        "checks:\n  - {metric: fvd, protocol: oficial, expected: 1, tolerance: {abs: 1}}\n"
    )
    with pytest.raises(UnknownNameError, match="Did you mean 'official'"):
        load_expected(tmp_path / "bad2.yaml")
    (tmp_path / "bad3.yaml").write_text("checks: []\n")
    with pytest.raises(CardError, match="non-empty list of checks"):
        load_expected(tmp_path / "bad3.yaml")


def test_check_files_are_validated_like_cards(tmp_path):
    (tmp_path / "typo.yaml").write_text(
        "checks:\n  - {metric: fvd, protocol: official, expected: 1, tolerence: {abs: 1}}\n"
    )
    with pytest.raises(CardError, match=r"typo.yaml: field 'checks\[0\].tolerence': unknown key"):
        load_expected(tmp_path / "typo.yaml")
    (tmp_path / "mode.yaml").write_text(
        "checks:\n  - {metric: fvd, protocol: official, expected: 1, tolerance: {abs: 1}, mode: better}\n"
    )
    with pytest.raises(CardError, match=r"'checks\[0\].mode': value not allowed; expected one of 'no_worse', 'within'"):
        load_expected(tmp_path / "mode.yaml")
    (tmp_path / "num.yaml").write_text(
        "checks:\n  - {metric: fvd, protocol: official, expected: high, tolerance: {abs: 1}}\n"
    )
    with pytest.raises(CardError, match=r"'checks\[0\].expected': wrong type; expected a number, got 'high'"):
        load_expected(tmp_path / "num.yaml")
    (tmp_path / "bad.toml").write_text("[[checks]\n")
    with pytest.raises(CardError, match=r"bad.toml: field '<file>': not valid TOML"):
        load_expected(tmp_path / "bad.toml")


INTERVAL = """
checks:
  - {name: fvd-iv, metric: fvd, protocol: official, run: ci, expected: 100.0, tolerance: {abs: 0}, mode: interval}
  - {name: psnr-iv, metric: psnr, protocol: per_frame, run: ci, expected: 30.0, tolerance: {abs: 0.1}, mode: interval}
"""


def _iv(low, high):
    return {"low": low, "high": high, "level": 0.95, "method": "percentile bootstrap", "resamples": 1000, "seed": 0}


@pytest.mark.parametrize(
    "fvd_iv,psnr_iv,passed",
    [
        ((90.0, 130.0), (29.0, 31.0), [True, True]),  # expected inside both intervals
        ((95.0, 99.0), (30.5, 31.0), [True, True]),  # better than expected beyond the interval: never a failure
        ((100.5, 130.0), (29.0, 29.95), [False, True]),  # FVD worse beyond its interval; PSNR within its 0.1 margin
        ((90.0, 130.0), (29.0, 29.85), [True, False]),  # PSNR (higher is better) worse beyond interval + 0.1
    ],
)
def test_interval_mode_fails_only_beyond_the_records_interval(tmp_path, fvd_iv, psnr_iv, passed):
    records = [
        rec(value=sum(fvd_iv) / 2, interval=_iv(*fvd_iv)),
        rec("psnr", "per_frame", value=sum(psnr_iv) / 2, interval=_iv(*psnr_iv)),
    ]
    res = invoke(tmp_path, records, INTERVAL, extra=["--json", str(tmp_path / "o.json")])
    out = json.loads((tmp_path / "o.json").read_text())
    assert [c["passed"] for c in out["checks"]] == passed
    assert res.exit_code == (0 if all(passed) else 1)


def test_interval_mode_without_an_interval_fails_saying_why(tmp_path):
    res = invoke(tmp_path, [rec(), rec("psnr", "per_frame", value=30.0)], INTERVAL)
    assert res.exit_code == 1 and "no interval: the record has none" in res.output
