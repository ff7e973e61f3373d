"""Every card loads and validates; broken cards name file and field; registries suggest names."""

import pytest
import yaml

from vgbench import cards
from vgbench.errors import CardError, UnknownNameError, VgbenchError
from vgbench.registry import Registry


@pytest.mark.parametrize("kind", cards.KINDS)
def test_every_card_loads(kind):
    for name in cards.names(kind):
        card = cards.get(kind, name)
        assert card.name == name and card.card_version >= 1


def test_every_protocol_resolves_and_hashes_uniquely():
    hashes = set()
    for m in cards.names("metrics"):
        card = cards.metric(m)
        for tag, p in cards.metric_protocols(card).items():
            c, t, proto = cards.resolve_protocol(f"{m}.{tag}")
            assert (c.name, t, proto) == (m, tag, p)
            hashes.add(cards.protocol_hash(m, tag, p, card.card_version))
    assert len(hashes) == sum(len(cards.metric_protocols(cards.metric(m))) for m in cards.names("metrics"))
    assert {"fvd", "fvd-star", "r-fvd"} <= set(cards.names("metrics"))
    assert cards.model(cards.metric("fvd").extractor).arch == "i3d"


def _write(tmp_path, data, kind="metrics", name="fvdx"):
    folder = tmp_path / kind
    folder.mkdir(exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _fvd_data():
    return yaml.safe_load(
        next(
            r / "metrics" / "fvd.yaml" for r in cards.card_roots() if (r / "metrics" / "fvd.yaml").exists()
        ).read_text()
    )


def test_unknown_key_names_file_and_field(tmp_path):
    data = _fvd_data()
    data["name"] = "fvdx"
    data["protocols"]["official"]["resise"] = "tf_legacy"
    path = _write(tmp_path, data)
    with pytest.raises(CardError, match=r"fvdx.yaml: field 'protocols.official.resise': unknown key"):
        cards.load_card_file(path, "metrics")


def test_bad_values_name_file_field_and_allowed(tmp_path):
    data = _fvd_data()
    data["name"] = "fvdx"
    data["protocols"]["official"]["resize"] = "bicubic"
    with pytest.raises(
        CardError, match=r"'protocols.official.resize': value not allowed; expected one of 'tf_legacy'.*got 'bicubic'"
    ):
        cards.load_card_file(_write(tmp_path, data), "metrics")
    data["protocols"]["official"]["resize"] = "tf_legacy"
    data["protocols"]["official"]["frames"] = 8
    with pytest.raises(CardError, match=r"frames': I3D needs at least 9 frames; expected >= 9, got 8"):
        cards.load_card_file(_write(tmp_path, data), "metrics")
    data["protocols"]["official"]["frames"] = 16
    data["default_protocol"] = "offical"
    with pytest.raises(CardError, match="default_protocol': not among"):
        cards.load_card_file(_write(tmp_path, data), "metrics")
    del data["fn"]
    with pytest.raises(CardError, match="'fn': required key is missing"):
        cards.load_card_file(_write(tmp_path, data), "metrics")


def test_name_must_match_file(tmp_path):
    data = _fvd_data()
    with pytest.raises(CardError, match="'name': must equal the file name"):
        cards.load_card_file(_write(tmp_path, data, name="other"), "metrics")


def test_did_you_mean():
    with pytest.raises(
        # nmse and bits-per-dim joined in issue 9 (the leaderboard's columns need their cards), psnr and ssim in 12,
        # continuity in 19
        UnknownNameError,
        match=r"Unknown metric 'fdv'. Did you mean 'fvd'.*Available: bits-per-dim, continuity, fvd, fvd-star, is, "
        r"nmse, psnr, r-fvd, ssim\.$",
    ):
        cards.resolve_protocol("fdv")
    with pytest.raises(UnknownNameError, match=r"Unknown protocol of metric 'fvd' 'oficial'. Did you mean 'official'"):
        cards.resolve_protocol("fvd", "oficial")


def test_user_cards_path(tmp_path, monkeypatch):
    data = _fvd_data()
    data["name"] = "fvd-mine"
    _write(tmp_path, data, name="fvd-mine")
    monkeypatch.setenv("VGBENCH_CARDS_PATH", str(tmp_path))
    cards._index.cache_clear()
    cards.get.cache_clear()
    try:
        assert "fvd-mine" in cards.names("metrics")
        assert cards.metric("fvd-mine").default_protocol == "official"
    finally:
        monkeypatch.delenv("VGBENCH_CARDS_PATH")
        cards._index.cache_clear()
        cards.get.cache_clear()


def test_registry_lazy_targets_and_duplicates():
    reg = Registry("thing")
    reg.register("sqrt", "math:sqrt")
    assert reg.get("sqrt")(9.0) == 3.0
    with pytest.raises(VgbenchError, match="registered twice"):
        reg.register("sqrt", "math:sqrt")
    with pytest.raises(UnknownNameError, match="Did you mean 'sqrt'"):
        reg.get("sqr")


def test_base_inheritance_merges_and_checks(tmp_path, monkeypatch):
    base = {
        "card_version": 1,
        "name": "toy.base",
        "arch": "i3d",
        "description": "a base",
        "config": {"num_classes": 400, "bn_eps": 0.001},
        "license": "x",
        "paper": "y",
        "weights": {"file": "f.npz", "tensors": 1, "values": 1, "manual": "by hand"},
        "tables": ["1: a row"],
    }
    _write(tmp_path, base, "models", "toy.base")
    _write(
        tmp_path,
        {
            "card_version": 2,
            "name": "toy.child",
            "base": "toy.base",
            "description": "a child",
            "config": {"bn_eps": 1e-5},
        },
        "models",
        "toy.child",
    )
    _write(tmp_path, {"card_version": 1, "name": "toy.loop", "base": "toy.loop"}, "models", "toy.loop")
    _write(tmp_path, {"card_version": 1, "name": "toy.bad", "base": "toy.bsae"}, "models", "toy.bad")
    monkeypatch.setenv("VGBENCH_CARDS_PATH", str(tmp_path))
    cards._index.cache_clear()
    cards.get.cache_clear()
    try:
        child = cards.model("toy.child")
        assert child.config == {"num_classes": 400, "bn_eps": 1e-5}  # nested mapping merged key by key
        assert child.card_version == 2 and child.description == "a child" and child.tables == ()  # not inherited
        assert child.weights.file == "f.npz"
        with pytest.raises(CardError, match=r"toy.loop.yaml: field 'base': cards inherit from each other in a cycle"):
            cards.model("toy.loop")
        with pytest.raises(CardError, match=r"toy.bad.yaml: field 'base': names no card.*Did you mean 'toy.base'"):
            cards.model("toy.bad")
    finally:
        monkeypatch.delenv("VGBENCH_CARDS_PATH")
        cards._index.cache_clear()
        cards.get.cache_clear()


def test_model_config_is_checked_against_the_arch_dataclass():
    from vgbench.models.i3d import I3DConfig

    card = cards.model("i3d.kinetics400_tfhub")
    assert cards.build_config(I3DConfig, card).bn_eps == 0.001
    with pytest.raises(CardError, match=r"card i3d.kinetics400_tfhub: field 'config.bn_epz': unknown key"):
        cards.build_config(I3DConfig, card, bn_epz=1.0)
    with pytest.raises(CardError, match=r"'config.num_classes': wrong type; expected an integer, got 'many'"):
        cards.build_config(I3DConfig, card, num_classes="many")


# Every protocol hash as computed at commit 2617a6c (before protocols became per-metric dataclasses in issue 9):
# records made earlier must keep matching their protocol.
HASHES_BEFORE_ISSUE_9 = {
    "fvd.official": "b566bd5828fecbe1",
    "fvd.videogpt_paper": "46799809a59c45da",
    "fvd.videogpt_repo": "0a8df0c1f5d9467d",
    "fvd.stylegan_v_2048_16f": "bfa7d59048bb89a4",
    "fvd-star.official": "1df468a603d18174",
    "fvd-star.videogpt_paper": "5e10e29e89eab22a",
    "fvd-star.videogpt_repo": "cda72de90b6f19fc",
    "fvd-star.stylegan_v_2048_16f": "213a0d632eb048e0",
    "is.tganv2": "4728702b3eba3459",
    "is.styleganv": "66285643a48530ed",
    "r-fvd.official": "9eea974b2967f740",
    "r-fvd.videogpt_paper": "4ee58b1786a66174",
    "r-fvd.videogpt_repo": "8d8e5cf2bcef7fe2",
    "r-fvd.stylegan_v_2048_16f": "c70141cd24385f15",
}


@pytest.mark.parametrize("key", sorted(HASHES_BEFORE_ISSUE_9))
def test_protocol_hashes_are_unchanged(key):
    card, tag, p = cards.resolve_protocol(key)
    assert cards.protocol_hash(card.name, tag, p, card.card_version) == HASHES_BEFORE_ISSUE_9[key]


def test_is_protocols_carry_no_fvd_fields():
    from vgbench.metrics.protocols import FVDProtocol, ISProtocol

    _, _, p = cards.resolve_protocol("is.tganv2")
    assert isinstance(p, ISProtocol) and not isinstance(p, FVDProtocol)
    params = cards.protocol_dict(p)
    assert not {"bn_eps", "fd_sqrtm", "fd_dtype", "result_dtype", "num_reference"} & set(params)
    assert params["splits"] == 1 and params["eps"] == 1e-20  # metrics/is.yaml


def _all_cards():
    return [(kind, name) for kind in cards.KINDS for name in cards.names(kind)]


@pytest.mark.parametrize("kind,name", _all_cards())
def test_every_card_target_resolves(kind, name):
    """arch, fn and prepare name importable code; extractors, converters and structure checks exist."""
    from vgbench.registry import ARCHS, CONVERTERS, DATASET_PREPARERS, METRIC_FNS, PROTOCOL_TYPES, STRUCTURE_CHECKS

    card = cards.get(kind, name)
    if kind == "models":
        assert callable(ARCHS.get(card.arch))
        w = card.weights
        if w is not None and w.source is not None:
            assert callable(CONVERTERS.get(w.source.member_format))
        if w is not None and w.url:
            assert callable(STRUCTURE_CHECKS.get(card.arch))
    elif kind == "metrics":
        assert callable(METRIC_FNS.get(card.fn))
        protocol_type = PROTOCOL_TYPES.get(card.fn)
        assert all(type(p) is protocol_type for p in cards.metric_protocols(card).values())
        if card.protocols_from:
            assert cards.metric(card.protocols_from).fn == card.fn  # shared protocols are read by the same engine
        if card.extractor:
            assert cards.model(card.extractor).weights is not None
    else:
        assert callable(DATASET_PREPARERS.get(card.prepare))


def test_every_leaderboard_column_resolves_to_a_metric_card():
    from vgbench import leaderboard

    columns = [c for spec in leaderboard.load_tables_card().tables.values() for c in spec.columns]
    assert len(columns) == 15  # tables.yaml: 1 + 1 + 2 + 2 + 3 + 3 + 3 columns (Tables 1-7)
    for col in columns:
        card, tag, _ = cards.resolve_protocol(col.protocol)
        assert (card.name, card.higher_is_better) == (col.metric, col.direction == "up")
    assert {c.protocol for c in columns} >= {"nmse.videogpt", "bits-per-dim.videogpt"}


def test_nmse_and_bits_per_dim_cards_state_their_choices():
    _, _, p = cards.resolve_protocol("nmse.videogpt")
    assert p.variance == 0.06 and p.clamp is False and p.split == "test"  # metrics.md §10: VideoGPT's constant
    _, _, m = cards.resolve_protocol("nmse.measured")
    assert m.variance == "measured" and m.variance_split == "train"
    card, _, b = cards.resolve_protocol("bits-per-dim")
    assert card.label == "bits/dim (per latent token)" and b.unit == "latent_token"  # metrics.md §11
    assert [sorted(w.reads()) for w in card.inputs] == [["checkpoint", "reference"]]


def test_rules_apply_only_to_the_metric_they_belong_to(tmp_path):
    nmse = yaml.safe_load(next(r / "metrics" / "nmse.yaml" for r in cards.card_roots()).read_text())
    nmse["name"] = "nmsex"
    nmse["protocols"]["videogpt"]["frames"] = 4  # fine for NMSE: the 9-frame minimum is I3D's
    assert cards.load_card_file(_write(tmp_path, nmse, name="nmsex"), "metrics").protocols["videogpt"].frames == 4
    nmse["protocols"]["videogpt"]["bn_eps"] = 1e-5  # an FVD parameter is not an NMSE parameter
    with pytest.raises(CardError, match=r"nmsex.yaml: field 'protocols.videogpt.bn_eps': unknown key"):
        cards.load_card_file(_write(tmp_path, nmse, name="nmsex"), "metrics")
    nmse["protocols"]["videogpt"].pop("bn_eps")
    nmse["protocols"]["videogpt"]["variance"] = 0.0
    with pytest.raises(CardError, match=r"'protocols.videogpt.variance': must be positive"):
        cards.load_card_file(_write(tmp_path, nmse, name="nmsex"), "metrics")


def test_input_sets_are_checked(tmp_path):
    data = _fvd_data()
    data["name"] = "fvdx"
    data["inputs"] = [{"samples": "videos", "reference": "real", "derive": {"samples": "samples"}}]
    with pytest.raises(CardError, match=r"'inputs\[0\].derive': derived sets are made from --checkpoint"):
        cards.load_card_file(_write(tmp_path, data), "metrics")
    data["inputs"] = [{"samples": "videos", "reference": "real"}, {"reference": "real", "samples": "others"}]
    with pytest.raises(CardError, match=r"'inputs\[1\]': repeats an earlier input set"):
        cards.load_card_file(_write(tmp_path, data), "metrics")
    data["inputs"] = [{"samples": "videos", "weights": "x"}]
    with pytest.raises(CardError, match=r"'inputs\[0\].weights': unknown key"):
        cards.load_card_file(_write(tmp_path, data), "metrics")
