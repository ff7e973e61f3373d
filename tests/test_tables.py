"""Tables 1-7: every published number reproduced, golden renderings, measured rows and protocol marking."""

import json
import re
from pathlib import Path

import pytest

from vgbench import leaderboard
from vgbench.errors import UnknownNameError

GOLDEN = Path(__file__).parent / "golden"
RECORDS = [json.loads(line) for line in (GOLDEN / "results.jsonl").read_text().splitlines()]


def published_numbers(spec_text: str) -> dict[str, list[str]]:
    """Every value and ± of the spec's Tables 1-7 (value cells of markdown rows), by table number."""
    out: dict[str, list[str]] = {}
    for block in re.split(r"^## Table ", spec_text, flags=re.M)[1:]:
        number = block[0]
        body = block.split("\n## ")[0]
        nums = []
        for line in body.splitlines():
            if (
                not line.startswith("|")
                or line.startswith("|---")
                or "(↓)" in line
                or "(↑)" in line
                or "bits/dim |" in line
            ):
                continue
            cells = [c.strip() for c in line.strip("|").split("|")][1:]  # skip the row label
            if number == "5":
                cells = cells[:-1]  # "total latents (derived)" is not in the paper
            for c in cells:
                nums += re.findall(r"\d+(?:\.\d+)?", c.replace("⚠", ""))
        out[number] = nums
    return out


def test_every_published_number_is_rendered_in_every_format(shared_dir):
    numbers = published_numbers((shared_dir / "spec" / "paper_tables.md").read_text())
    assert (
        sorted(numbers) == [str(n) for n in range(1, 8)] and sum(map(len, numbers.values())) == 118
    )  # 8+16+4+12+50+12+16 cells by hand
    for n, nums in numbers.items():
        for fmt in leaderboard.FORMATS:
            text = leaderboard.render_tables(n, fmt, [])
            cells = re.findall(r"\d+(?:\.\d+)?", text)
            for num in nums:
                assert num in cells, f"table {n} ({fmt}) lacks {num}"


@pytest.mark.parametrize("number", [str(n) for n in range(1, 8)])
@pytest.mark.parametrize("fmt,ext", [("md", "md"), ("latex", "tex")])
def test_golden_renderings(number, fmt, ext):
    assert leaderboard.render_tables(number, fmt, RECORDS) == (GOLDEN / f"table{number}.{ext}").read_text()


def test_measured_rows_are_marked_and_ranked_only_under_the_same_protocol():
    t = leaderboard.with_results(leaderboard.get_table("5"), RECORDS)
    paper = next(r for r in t.rows if r.label.endswith("paper-protocol"))
    official = next(r for r in t.rows if r.label.endswith("official-protocol"))
    assert paper.cells["fvd"].best and paper.cells["fvd"].text() == "101.2 ± 1.9"
    assert official.cells["fvd"].off_protocol and not official.cells["fvd"].best  # 99.5 < 101.2 but not ranked
    assert official.cells["fvd"].text() == "99.5†"
    assert any("measured under fvd.official" in f and "Not ranked" in f for f in t.footnotes)
    table2 = leaderboard.with_results(leaderboard.get_table("2"), RECORDS)  # ucf101: no BAIR runs shown
    assert not any(r.measured for r in table2.rows)


def test_changed_protocol_parameters_are_marked():
    rec = dict(RECORDS[0], protocol_hash="0000000000000000")
    t = leaderboard.with_results(leaderboard.get_table("1"), [rec])
    assert t.rows[-1].cells["fvd"].off_protocol
    assert "parameters that have changed" in t.footnotes[-1]


def test_no_results_footer_and_best_marks():
    md = leaderboard.render_tables("1", "md", [])
    assert "| Video Transformer | **94 ± 2** |" in md
    assert "No measured rows. Add one with `vgbench eval --dataset bair --run NAME" in md
    html = leaderboard.render_tables("2", "html", [])
    # since issue 9 pandas' Styler writes the HTML and marks the best value with CSS (was <b>...</b>)
    cell = re.search(r'<td id="(T_table-2_row\d+_col1)"[^>]*>32.97 ± 1.7</td>', html)
    assert cell and re.search(rf"#{cell.group(1)} {{\s*font-weight: bold;\s*}}", html)
    assert len(re.findall("font-weight: bold", html)) == 1
    csv_text = leaderboard.render_tables("3", "csv", [])
    assert csv_text.splitlines()[2] == "With Attention,0.0033,,14.9,,published,NMSE;R-FVD"


def test_unknown_table_and_format():
    with pytest.raises(UnknownNameError, match="Unknown table '9'"):
        leaderboard.render_tables("9", "md", [])
    with pytest.raises(UnknownNameError, match="Unknown format 'pdf'.*Available: csv, html, latex, md"):
        leaderboard.render(leaderboard.get_table("1"), "pdf")


def test_plots(tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib comes with the dev extra that make test installs")
    from vgbench import plots

    for n in plots.PLOTTED:
        out = plots.plot_table(leaderboard.with_results(leaderboard.get_table(n), RECORDS), tmp_path)
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000


def test_tables_yaml_is_validated_like_a_card(tmp_path, monkeypatch):
    import yaml

    from vgbench.errors import CardError

    src = leaderboard.leaderboard_dir()
    good = yaml.safe_load((src / "tables.yaml").read_text())
    monkeypatch.setattr(leaderboard, "leaderboard_dir", lambda: tmp_path)

    def check(mutate, match):
        data = yaml.safe_load(yaml.safe_dump(good))
        mutate(data)
        (tmp_path / "tables.yaml").write_text(yaml.safe_dump(data))
        with pytest.raises(CardError, match=match):
            leaderboard.load_tables()

    check(
        lambda d: d["tables"]["1"]["columns"][0].update(protocl="x"), r"field 'tables.1.columns\[0\].protocl': unknown"
    )
    check(lambda d: d["tables"]["1"].update(caption="x"), r"tables.yaml: field 'tables.1.caption': unknown key")
    check(lambda d: d["tables"]["2"]["columns"][0].update(direction="left"), r"direction': value not allowed")
    check(
        lambda d: d["tables"]["3"]["columns"][0].update(protocol="nmse.videogtp"),
        r"'tables.3.columns\[0\].protocol': resolves to no metric protocol .*Did you mean 'videogpt'",
    )
    check(
        lambda d: d["tables"]["2"]["columns"][0].update(direction="down"),
        r"'tables.2.columns\[0\].direction': contradicts metric card is; expected up, got 'down'",
    )
    check(lambda d: d["tables"]["1"]["columns"][0].update(metric="r-fvd"), r"differs from the protocol's metric")


def test_results_read_as_a_dataframe(tmp_path):
    from vgbench import results

    store = tmp_path / "r.jsonl"
    store.write_text((GOLDEN / "results.jsonl").read_text())
    frame = results.read(store)
    assert frame.shape[0] == 4 and list(frame["run"]) == [r["run"] for r in RECORDS]  # one row per record
    assert results.read(tmp_path / "none.jsonl").empty
    nested = dict(RECORDS[0], protocol_params={"resize": "torch_half_pixel", "trials": 10}, trial_values=[1.0, 2.0])
    flat = results.to_frame([nested])
    assert flat.loc[0, "protocol_params.resize"] == "torch_half_pixel" and flat.loc[0, "protocol_params.trials"] == 10
    assert flat.loc[0, "trial_values"] == [1.0, 2.0]
    # tables accept the frame as they accept the records
    assert leaderboard.render_tables("5", "md", frame) == leaderboard.render_tables("5", "md", RECORDS)


def test_csv_is_written_by_pandas_with_the_best_columns():
    text = leaderboard.render_tables("5", "csv", RECORDS)
    lines = text.splitlines()
    assert lines[0] == "Latent Size,R-FVD (↓),R-FVD ±,FVD (↓),FVD ±,FVD* (↓),FVD* ±,kind,best"
    # since issue 10 the footnotes follow the data rows as rows of kind "footnote": the data rows end before them
    data = [line for line in lines if not line.endswith(",footnote,")]
    assert data[-1] == '"VideoGPT — vgbench, official-protocol",,,99.5†,,,,measured,'
    assert data[-2] == '"VideoGPT — vgbench, paper-protocol",13.8,,101.2,1.9,95.5,1.2,measured,FVD'


def test_records_with_an_interval_show_value_plus_minus_half_width():
    recs = [dict(r) for r in RECORDS]
    official = next(r for r in recs if r["metric"] == "fvd" and r["protocol"] == "official")
    official["interval"] = {"low": 90.5, "high": 110.5, "level": 0.95, "method": "percentile bootstrap",
                            "resamples": 1000, "seed": 0}  # fmt: skip
    t = leaderboard.with_results(leaderboard.get_table("5"), recs)
    row = next(r for r in t.rows if r.label.endswith("official-protocol"))
    assert row.cells["fvd"].text() == "99.5 ± 10.0†"
    assert leaderboard.INTERVAL_FOOTNOTE in t.footnotes
    plain = leaderboard.with_results(leaderboard.get_table("5"), RECORDS)  # no interval: the golden tables hold
    assert leaderboard.INTERVAL_FOOTNOTE not in plain.footnotes


def test_plot_folder_gets_the_sample_count_curves(tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib comes with the dev extra that make test installs")
    from vgbench import api

    rec = dict(next(r for r in RECORDS if r["metric"] == "fvd"))
    rec["curve"] = {"points": [{"n": n, "n_reference": n, "value": 100 + 800 / n} for n in (8, 16, 32, 64)],
                    "value_inf": 100.0, "k": 800.0, "residual": 0.0}  # fmt: skip
    store = tmp_path / "r.jsonl"
    store.write_text(json.dumps(rec) + "\n")
    api.tables("5", "md", store, tmp_path / "plots")
    assert (tmp_path / "plots" / "sample_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
