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
        # nmse and bits-per-dim joined in issue 9 (the leaderboard's columns need their cards)
        UnknownNameError,
        match=r"Unknown metric 'fdv'. Did you mean 'fvd'.*Available: bits-per-dim, fvd, fvd-star, is, nmse, r-fvd",
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
