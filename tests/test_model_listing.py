"""``vgbench list models``: every card's arch, latent grid and size, against hand counts; invalid cards listed."""

from __future__ import annotations

import textwrap

import pytest
from click.testing import CliRunner

from vgbench import cards
from vgbench.cli import cli
from vgbench.models.summary import ModelRow, format_rows, model_row, model_rows

from .test_gpt import PARAMS as GPT_HAND_COUNTS
from .test_vqvae import HAND_COUNTS as VQVAE_HAND_COUNTS

# VG's VQ-VAE: 21,141,619 trainable parameters for every downsampling, measured by instantiating
# wilson1yan/VideoGPT@733d2b1 VQVAE (the number tests/test_vqvae.py checks against a real build).
VG_VQVAE = 21_141_619
# VG priors: the card's pinned value count of the whole vgbench checkpoint (prior and VQ-VAE, measured on an import
# at the nominal config) minus its VQ-VAE's (vqvae.bair_stride4x2x2: 22,202,831, codebook buffers included); the
# prior has no persistent buffers, so the rest is its parameters. Independent of the meta build under test.
VG_PRIORS = {"gpt.bair_gpt": 94_674_751 - 22_202_831, "gpt.ucf101_uncond_gpt": 55_441_295 - 22_202_831}
VG_VQVAES = ("vqvae.bair_stride4x2x2", "vqvae.kinetics_stride2x4x4", "vqvae.kinetics_stride4x4x4",
             "vqvae.ucf101_stride4x4x4")  # fmt: skip
FEATURE_NETWORKS = ("c3d.tgan2_ucf101", "i3d.kinetics400_tfhub")
QUICKSTART = {"vqvae.quickstart", "gpt.quickstart"}  # not paper cards: no hand count; checked against a real build


def _expected_params(name: str) -> int | None:
    if name in VQVAE_HAND_COUNTS:
        return VQVAE_HAND_COUNTS[name]
    if name in GPT_HAND_COUNTS:
        return GPT_HAND_COUNTS[name]
    if name in VG_PRIORS:
        return VG_PRIORS[name]
    return VG_VQVAE if name in VG_VQVAES else None


def test_every_card_is_covered_by_a_known_count():
    known = set(VQVAE_HAND_COUNTS) | set(GPT_HAND_COUNTS) | set(VG_PRIORS) | set(VG_VQVAES) | set(FEATURE_NETWORKS)
    assert known | QUICKSTART == set(cards.names("models"))


@pytest.mark.parametrize("name", sorted(set(cards.names("models")) - QUICKSTART))
def test_row_matches_hand_counts(name):
    row = model_row(name)
    card = cards.model(name)
    assert row.error == "" and row.arch == card.arch
    assert row.params == _expected_params(name)
    if name in FEATURE_NETWORKS:
        assert row.latent == "" and (row.tensors, row.values) == (card.weights.tensors, card.weights.values)
    else:
        # the latent grid: a VQ-VAE card states it (config.latent); a prior models its VQ-VAE's
        vq = cards.model(card.vqvae) if card.vqvae else card
        assert row.latent == "x".join(map(str, vq.config["latent"]))
    if name in VG_PRIORS or name in VG_VQVAES:  # importer cards: the imported file's pinned counts too
        assert (row.tensors, row.values) == (card.weights.tensors, card.weights.values)


@pytest.mark.parametrize("name", sorted(QUICKSTART))
def test_meta_count_equals_a_real_build(name):
    from vgbench.models import create

    model = create(name, weights=False)
    net = model.prior if name.startswith("gpt.") else model  # a prior's row counts the prior alone
    assert model_row(name).params == sum(p.numel() for p in net.parameters() if p.requires_grad)
    assert model_row(name).latent == "16x8x8"  # vqvae.quickstart: 16x64x64 / (1, 8, 8)


def test_format_rows_known_answer():
    rows = [
        ModelRow("vqvae.x", "videogpt_vqvae", "8x32x32", 15775107, description="A VQ-VAE."),
        ModelRow("i3d.y", "i3d", tensors=230, values=12704544, description="A feature network " * 8),
        ModelRow("gpt.bad", error="card gpt.bad: field 'config.hidden': must be positive"),
    ]
    # columns as wide as their widest cell (or header), two spaces apart, numbers right-aligned
    expected = textwrap.dedent("""\
        name     arch            latent   parameters  weights (tensors / values)
        vqvae.x  videogpt_vqvae  8x32x32  15,775,107                           -
            A VQ-VAE.
        i3d.y    i3d             -                 -            230 / 12,704,544
            A feature network A feature network A feature network A feature network A feature network A
            feature network A feature network A feature network
        gpt.bad                  -                 -                           -
            INVALID CARD: card gpt.bad: field 'config.hidden': must be positive""")
    assert format_rows(rows, width=100) == expected


def _user_cards(tmp_path, monkeypatch, files: dict[str, str]) -> None:
    (tmp_path / "models").mkdir()
    for name, text in files.items():
        (tmp_path / "models" / f"{name}.yaml").write_text(textwrap.dedent(text))
    monkeypatch.setenv("VGBENCH_CARDS_PATH", str(tmp_path))
    cards._index.cache_clear()
    cards.get.cache_clear()


@pytest.fixture
def clean_cards():
    yield
    cards._index.cache_clear()
    cards.get.cache_clear()


def test_invalid_cards_show_their_error_and_the_listing_goes_on(tmp_path, monkeypatch, clean_cards):
    _user_cards(tmp_path, monkeypatch, {
        # an unknown field: refused when the card is read
        "vqvae.typo": """\
            card_version: 1
            name: vqvae.typo
            base: vqvae.quickstart
            description: a typo
            hiden: 12
            """,
        # an impossible combination: the stated latent does not follow from input and downsampling
        "vqvae.badlatent": """\
            card_version: 1
            name: vqvae.badlatent
            base: vqvae.quickstart
            description: wrong latent
            config: {latent: [4, 32, 32]}
            """,
        # a prior on a VQ-VAE card that does not exist
        "gpt.orphan": """\
            card_version: 1
            name: gpt.orphan
            base: gpt.quickstart
            description: no VQ-VAE
            vqvae: vqvae.nowhere
            """,
        # hidden not divisible into the prior's four position tables (T', H', W' and the codebook axis)
        "gpt.badhidden": """\
            card_version: 1
            name: gpt.badhidden
            base: gpt.quickstart
            description: hidden 130
            config: {hidden: 130, heads: 2}
            """,
    })  # fmt: skip
    assert {"vqvae.typo", "vqvae.badlatent", "gpt.orphan", "gpt.badhidden"} < set(cards.names("models"))
    names = ["gpt.badhidden", "gpt.orphan", "vqvae.badlatent", "vqvae.quickstart", "vqvae.typo"]
    rows = {r.name: r for r in model_rows(names)}  # (the whole listing takes ~10 s here: a part of it)
    assert "unknown key" in rows["vqvae.typo"].error and "'hiden'" in rows["vqvae.typo"].error
    assert rows["vqvae.typo"].error.startswith(str(tmp_path / "models" / "vqvae.typo.yaml"))
    assert "field 'config.latent'" in rows["vqvae.badlatent"].error
    assert rows["vqvae.badlatent"].error.startswith("card vqvae.badlatent:")
    assert "Unknown model 'vqvae.nowhere'" in rows["gpt.orphan"].error
    assert "card gpt.badhidden: field 'config.hidden': the position embedding" in rows["gpt.badhidden"].error
    assert rows["vqvae.quickstart"].error == "" and rows["vqvae.quickstart"].params > 0  # the others still listed
    text = format_rows([rows[n] for n in ("vqvae.typo", "vqvae.quickstart")], width=400)
    assert "    INVALID CARD: " + rows["vqvae.typo"].error in text.splitlines()


def test_cli_list_models(tmp_path, monkeypatch, clean_cards):
    _user_cards(tmp_path, monkeypatch, {"vqvae.typo": "card_version: 1\nname: vqvae.typo\nhiden: 1\n"})
    monkeypatch.setattr(cards, "names", lambda kind: ["vqvae.bair", "vqvae.typo", "i3d.kinetics400_tfhub"])
    res = CliRunner().invoke(cli, ["list", "models"])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0].split() == ["name", "arch", "latent", "parameters", "weights", "(tensors", "/", "values)"]
    assert lines[1].split() == ["vqvae.bair", "videogpt_vqvae", "8x32x32", "15,775,107", "-"]
    assert any(ln.startswith("    INVALID CARD: ") and "hiden" in ln for ln in lines)
    assert ["i3d.kinetics400_tfhub", "i3d", "-", "-", "230", "/", "12,704,544"] in [ln.split() for ln in lines]
