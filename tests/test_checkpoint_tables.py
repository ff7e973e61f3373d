"""`vgbench table` places a checkpoint's records beside the published row its model card stands behind (the card's
``tables:`` field), in Tables 1 and 3-7, in every format, labelled with the run; records that do not reproduce the
row (another protocol, dataset or configuration) stay marked † and unranked. Records here are written by hand in
the shape the engines write (the end-to-end path from a trained run is in tests/test_checkpoint_metrics.py)."""

from __future__ import annotations

import csv
import dataclasses
import io
import json

import pytest
from click.testing import CliRunner

from vgbench import cards, leaderboard
from vgbench.errors import CardError


def rec(metric, protocol, value, std=None, run="mine", card=None, vqvae_card=None, **extra) -> dict:
    """A result record as the engines write it: protocol hash of the card, checkpoint provenance, a reference split."""
    c, tag, p = cards.resolve_protocol(metric, protocol)
    out = {
        "metric": metric,
        "protocol": tag,
        "protocol_hash": cards.protocol_hash(c.name, tag, p, c.card_version),
        "value": value,
        "std": std,
        "run": run,
        "dataset": "",
        "off_protocol": False,
        "reference": {"role": "real clips", "dataset": "bair:test", "count": 256},
        "samples": {"role": "reconstructions"},
    }
    if card:
        out["checkpoint"] = {"path": f"/runs/{run}/final.pt", "sha256": "ab" * 32, "card": card, "step": 10}
        if vqvae_card:
            out["checkpoint"]["vqvae_card"] = vqvae_card
    for key, value in extra.items():
        out[key] = value if not isinstance(value, dict) else {**out.get(key, {}), **value}
    return out


# One BAIR run of the paper's default configuration (vqvae.bair + gpt.bair), every metric under its column's
# protocol; FVD* from samples whose `vgbench sample` sidecar names the prior, reconstructions by the VQ-VAE.
RUN = [
    rec("nmse", "videogpt", 0.00351, card="vqvae.bair"),
    rec("r-fvd", "videogpt_paper", 14.2, card="gpt.bair", vqvae_card="vqvae.bair"),  # a prior holding the VQ-VAE
    rec("bits-per-dim", "videogpt", 2.071, card="gpt.bair", vqvae_card="vqvae.bair"),
    rec("fvd", "videogpt_paper", 104.25, 2.1, card="gpt.bair", vqvae_card="vqvae.bair"),
    rec("fvd-star", "videogpt_paper", 93.0, 1.4, card="vqvae.bair", samples={"generated_by": {"card": "gpt.bair"}}),
]
# Where each of RUN's metrics must appear (vqvae.bair: 3 With Attention, 5, 6, 7; gpt.bair: 4: 16, 5, 6, 7).
WANT = {
    "3": ("With Attention", {"nmse": "0.0035", "r-fvd": "14.2"}),
    "4": ("16", {"bits-per-dim": "2.07", "fvd": "104.2 ± 2.1"}),
    "5": ("8 × 32 × 32", {"r-fvd": "14.2", "fvd": "104.2 ± 2.1", "fvd-star": "93.0 ± 1.4"}),
    "6": ("1024", {"r-fvd": "14.2", "fvd": "104.2 ± 2.1", "bits-per-dim": "2.07"}),
    "7": ("8 × 32 × 32 × 1", {"r-fvd": "14.2", "fvd": "104.2 ± 2.1", "bits-per-dim": "2.07"}),
}


@pytest.mark.parametrize("number", sorted(WANT))
def test_a_run_sits_beside_the_row_it_reproduces(number):
    slot, cells = WANT[number]
    t = leaderboard.with_results(leaderboard.get_table(number), RUN)
    labels = [r.label for r in t.rows]
    mine = labels.index(f"{slot} — vgbench, mine")
    assert labels[mine - 1] == slot and sum(r.measured for r in t.rows) == 1  # right after its published row
    row = t.rows[mine]
    assert {m: c.text() for m, c in row.cells.items()} == cells  # every metric of the table it measured, no other
    assert not any(c.off_protocol for c in row.cells.values()) and not any("†" in f for f in t.footnotes)


def test_run_rows_are_ranked_with_the_published_ones():
    t3 = leaderboard.with_results(leaderboard.get_table("3"), RUN)
    mine = next(r for r in t3.rows if r.measured)
    assert mine.cells["r-fvd"].best  # 14.2 beats the published 14.9 and 15.3
    assert not mine.cells["nmse"].best  # 0.0035 vs the published 0.0033
    t4 = leaderboard.with_results(leaderboard.get_table("4"), RUN)
    assert not next(r for r in t4.rows if r.measured).cells["fvd"].best  # 104.2 vs 103.3


def test_a_card_without_a_row_in_a_table_stays_out_of_it():
    # gpt.bair has no Table 1 row (Table 1's VideoGPT number is the 8-layer prior, gpt.bair_layers8)
    t1 = leaderboard.with_results(leaderboard.get_table("1"), RUN)
    assert not any(r.measured for r in t1.rows)
    layers8 = [rec("fvd", "videogpt_paper", 103.0, 2.0, run="l8", card="gpt.bair_layers8", vqvae_card="vqvae.bair")]
    t1 = leaderboard.with_results(leaderboard.get_table("1"), layers8)
    labels = [r.label for r in t1.rows]
    assert labels[labels.index("VideoGPT (ours)") + 1] == "VideoGPT (ours) — vgbench, l8"
    t4 = leaderboard.with_results(leaderboard.get_table("4"), layers8)
    labels = [r.label for r in t4.rows]
    assert labels[labels.index("8") + 1] == "8 — vgbench, l8"
    noattn = [rec("nmse", "videogpt", 0.0042, run="na", card="vqvae.bair_noattn")]
    t3 = leaderboard.with_results(leaderboard.get_table("3"), noattn + RUN)
    assert [r.label for r in t3.rows] == [
        "No Attention",
        "No Attention — vgbench, na",
        "With Attention",
        "With Attention — vgbench, mine",
    ]


FMT_MARKS = {"md": "†", "csv": "†", "html": "†", "latex": r"$^\dagger$"}


@pytest.mark.parametrize("fmt", leaderboard.FORMATS)
def test_every_format_shows_the_run_and_keeps_off_protocol_values_marked(fmt):
    official = rec("fvd", "official", 99.5, run="official", card="gpt.bair", vqvae_card="vqvae.bair")
    for number, (_, cells) in WANT.items():
        text = leaderboard.render_tables(number, fmt, [*RUN, official])
        assert "mine" in text and "vgbench" in text, (number, fmt)
        for value in cells.values():
            assert value.split(" ± ")[0] in text, (number, fmt, value)
        if number in ("4", "6", "7"):
            assert "bits/dim (per latent token)" in text
        if number in ("4", "5", "6", "7"):  # the official-protocol FVD is placed too, marked and footnoted
            assert "99.5" + FMT_MARKS[fmt] in text, (number, fmt)
            assert "measured under fvd.official" in text and "Not ranked" in text
    md = leaderboard.render_tables("4", "md", [*RUN, official])
    lines = [line for line in md.splitlines() if line.startswith("| 16")]
    assert lines == [
        "| 16 | **2.05** | 103.6 ± 2.0 |",
        "| 16 — vgbench, mine | 2.07 | 104.2 ± 2.1 |",
        "| 16 — vgbench, official |  | 99.5† |",
    ]


def test_latex_rule_separates_measured_rows_only_when_they_follow_the_published_ones():
    inside = leaderboard.render_tables("5", "latex", RUN)  # 8 x 32 x 32 is the 8th of 10 rows
    assert inside.count(r"\midrule") == 1  # no rule would split "published" from "measured" correctly
    last = leaderboard.render_tables("4", "latex", RUN)  # 16 is the last published row: the run row follows all
    assert last.count(r"\midrule") == 2 and last.index(r"\midrule", last.index("16 & ")) < last.index("16 ---")


def test_records_that_do_not_reproduce_the_row_are_marked():
    other_data = rec("fvd", "videogpt_paper", 90.0, run="ucf", card="gpt.bair", reference={"dataset": "ucf101:test"})
    unknown = rec("bits-per-dim", "videogpt", 2.0, run="file", card="gpt.bair", reference={"dataset": None})
    changed = rec("fvd", "videogpt_paper", 95.0, run="small", card="gpt.bair")
    changed["checkpoint"]["overrides"] = ["prior.config.layers=2"]
    set_run = rec("bits-per-dim", "videogpt", 1.0, run="set", card="gpt.bair", off_protocol=True)
    t = leaderboard.with_results(leaderboard.get_table("4"), [other_data, unknown, changed, set_run])
    cells = {r.label: r.cells for r in t.rows if r.measured}
    assert cells["16 — vgbench, ucf"]["fvd"].text() == "90.0†"
    assert cells["16 — vgbench, file"]["bits-per-dim"].text() == "2.00†"
    assert cells["16 — vgbench, small"]["fvd"].text() == "95.0†"
    assert cells["16 — vgbench, set"]["bits-per-dim"].text() == "1.00†"
    assert not any(c.best for r in cells.values() for c in r.values())  # 90.0 and 1.00 would be best: not ranked
    notes = "\n".join(t.footnotes)
    assert "† ucf, FVD: measured on ucf101, the row on bair. Not ranked." in notes
    assert (
        "† file, bits/dim (per latent token): dataset not recorded (the row is on bair; pass --dataset bair)" in notes
    )
    assert "† small, FVD: the checkpoint was trained with changes to its card (prior.config.layers=2)" in notes
    assert "† set, bits/dim (per latent token): measured under bits-per-dim.videogpt (off-protocol run)" in notes


def test_the_latest_record_of_a_metric_wins_and_runs_stay_apart():
    old, new = (rec("fvd", "videogpt_paper", v, 1.0, card="gpt.bair") for v in (120.0, 110.0))
    other = rec("fvd", "videogpt_paper", 130.0, 1.0, run="b", card="gpt.bair")
    t = leaderboard.with_results(leaderboard.get_table("4"), [old, other, new])
    measured = [(r.label, r.cells["fvd"].value) for r in t.rows if r.measured]
    assert measured == [("16 — vgbench, mine", "110.0"), ("16 — vgbench, b", "130.0")]


def test_records_without_a_card_mapping_keep_the_run_row_of_their_dataset():
    # gpt.quickstart has `tables: []`: its BAIR-evaluated numbers form a run row after the published ones
    q = rec("fvd", "videogpt_paper", 150.0, 3.0, run="q", card="gpt.quickstart")
    t = leaderboard.with_results(leaderboard.get_table("4"), [q])
    assert t.rows[-1].label == "VideoGPT — vgbench, q" and t.rows[-1].cells["fvd"].text() == "150.0 ± 3.0"
    q_other = rec("fvd", "videogpt_paper", 150.0, 3.0, run="q", card="gpt.quickstart", reference={"dataset": "x:test"})
    assert not any(r.measured for r in leaderboard.with_results(leaderboard.get_table("4"), [q_other]).rows)


def test_a_card_row_that_does_not_exist_is_a_card_error(tmp_path, monkeypatch):
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "gpt.typo.yaml").write_text(
        "card_version: 1\nname: gpt.typo\nbase: gpt.bair\ndescription: a prior\ntables: ['4: 32']\n"
    )
    monkeypatch.setenv("VGBENCH_CARDS_PATH", str(tmp_path))
    cards._index.cache_clear()
    cards.get.cache_clear()
    try:
        with pytest.raises(CardError, match=r"gpt.typo.*names no published row of Table 4.*'32'"):
            leaderboard.with_results(leaderboard.get_table("4"), [rec("fvd", "videogpt_paper", 1.0, card="gpt.typo")])
        with pytest.raises(CardError, match=r"an entry is 'TABLE: ROW LABEL'"):
            leaderboard.card_rows(dataclasses.replace(cards.model("gpt.typo"), tables=("4 16",)))
    finally:
        monkeypatch.delenv("VGBENCH_CARDS_PATH")
        cards._index.cache_clear()
        cards.get.cache_clear()


def test_every_model_card_row_is_a_published_row():
    tables = leaderboard.load_tables()
    rows = {n: {r.label for r in t.rows} for n, t in tables.items()}
    for name in cards.names("models"):
        for number, label in leaderboard.card_rows(cards.model(name)):
            assert label in rows[number], (name, number, label)


def test_vgbench_table_reads_the_store(tmp_path):
    from vgbench.cli import cli

    store = tmp_path / "results.jsonl"
    store.write_text("".join(json.dumps(r) + "\n" for r in RUN))
    out = CliRunner().invoke(cli, ["table", "5", "--format", "csv", "--results", str(store)])
    assert out.exit_code == 0, out.output
    rows = list(csv.reader(io.StringIO(out.output)))
    mine = next(r for r in rows if r[0] == "8 × 32 × 32 — vgbench, mine")
    assert mine == ["8 × 32 × 32 — vgbench, mine", "14.2", "", "104.2", "2.1", "93.0", "1.4", "measured", ""]
    assert rows[rows.index(mine) - 1][0] == "8 × 32 × 32"
