"""The CLI through Click's runner: help examples, listing, errors and exit codes, doctor, env overrides."""

import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from vgbench.cli import cli, main

from .conftest import random_videos


def run(args, **kw):
    return CliRunner().invoke(cli, args, catch_exceptions=False, **kw)


@pytest.mark.parametrize("cmd", [[], ["eval"], ["weights"], ["list"], ["doctor"], ["demo"]])
def test_help_has_examples(cmd):
    out = run(cmd + ["--help"]).output
    assert "Examples:" in out and "vgbench" in out


def test_list_commands():
    assert "fvd.official" in run(["list", "protocols"]).output
    assert "fvd-star" in run(["list", "metrics"]).output
    assert "i3d.kinetics400_tfhub" in run(["list", "models"]).output


def test_errors_exit_1_with_one_line(capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["eval", "--metric", "fdv", "--samples", str(tmp_path), "--reference", str(tmp_path)])
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: Unknown metric 'fdv'. Did you mean 'fvd'") and "Traceback" not in err
    with pytest.raises(SystemExit) as exc:
        main(["eval", "--samples", str(tmp_path)])
    assert exc.value.code == 1  # FVD without a reference: a clear error
    assert "metric fvd needs --reference (real videos)" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["eval", "--reference", "x"])
    assert exc.value.code == 2  # usage error: --samples is required


def test_doctor_reports_and_warns(tmp_path):
    v = random_videos(5, t=8).astype(np.float32) / 255.0
    np.save(tmp_path / "s.npy", v)
    out = run(["doctor", str(tmp_path / "s.npy")]).output
    assert "5 videos (npy), dtype float32, range 0-1 (detected)" in out
    assert "fewer than 9 frames" in out and "N = 5 <= 400" in out and "pass --range" in out
    rep = json.loads(run(["doctor", "--json", "--range", "0-1", str(tmp_path / "s.npy")]).output)
    assert rep["count"] == 5 and rep["frames"] == {"8": 5} and rep["range_source"] == "declared"


def test_environment_overrides(tmp_path):
    np.save(tmp_path / "s.npy", random_videos(3, t=9))
    out = run(["doctor", "--json", str(tmp_path / "s.npy")], env={"VGBENCH_DOCTOR_LIMIT": "2"}).output
    assert json.loads(out)["count"] == 3 and sum(json.loads(out)["frames"].values()) == 2


def test_help_is_fast_and_does_not_import_torch():
    code = (
        "import sys; from vgbench.cli import main; sys.argv=['vgbench','--help']\n"
        "try: main()\nexcept SystemExit: pass\nprint('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("False")


@pytest.mark.parametrize(
    "cmd", [["weights", "fetch"], ["weights", "import"], ["weights", "list"], ["weights", "verify"]]
)
def test_weights_commands_have_examples(cmd):
    out = run(cmd + ["--help"]).output
    assert "Examples:" in out and f"vgbench {' '.join(cmd)}" in out


def test_eval_help_names_every_metric_and_the_new_options():
    out = " ".join(run(["eval", "--help"]).output.split())
    for name in ("fvd", "fvd-star", "r-fvd", "is", "nmse", "bits-per-dim", "psnr", "ssim"):
        assert f"{name}," in out or f"{name})" in out, name
    assert "--checkpoint" in out and "--set KEY=VALUE" in out and "marked off-protocol" in out


def test_eval_needs_something_to_score(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["eval", "--metric", "nmse", "--reference", "bair:test"])
    assert exc.value.code == 2 and "give --samples (the videos to score) or --checkpoint" in capsys.readouterr().err


def test_library_warnings_are_one_line_in_words(caplog):
    # issue 19: `vgbench eval` printed "py.warnings: .../fvd.py:227: UserWarning: ..." and the source line under it
    import logging
    import warnings

    from vgbench import cli as cli_mod
    from vgbench.metrics.frechet import FeatureStats, frechet_distance_from_stats

    rng = np.random.default_rng(0)
    a, b = (FeatureStats.from_features(rng.normal(size=(5, 8))) for _ in range(2))
    with warnings.catch_warnings(), caplog.at_level(logging.WARNING):
        warnings.simplefilter("always")
        cli_mod._setup_logging(0, False)  # installs the one-line form
        try:
            frechet_distance_from_stats(a, b)
        finally:
            logging.captureWarnings(False)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "N = 5 samples <= feature dimension 8: the covariance is singular (rank <= N-1) and the distance is "
        "biased upwards; compare only numbers made with the same N."
    ]
    assert caplog.records[0].name == "vgbench"
