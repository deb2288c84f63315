import json

import pytest
import torch

from lale_geo.errors import WeightsError
from lale_geo.models import create_model
from lale_geo.weights import WeightsCard, list_weights, load_card, load_weights, save_weights, sha256_of

FIELDS = {
    "name": "tiny", "model": "lale_s1",
    "classes": [{"id": 0, "name": "a", "colour": [1, 2, 3]}, {"id": 1, "name": "b", "colour": [4, 5, 6]}],
    "bands": ["red", "green", "blue"], "input_range": [0, 255], "mean": [0.5] * 3, "std": [0.25] * 3,
    "tile_size": 256, "overlap": 64, "license": "CC0-1.0",
}


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    model = create_model("lale_s1", num_classes=2)
    card = save_weights(model, FIELDS, tmp_path / "tiny")
    return tmp_path / "tiny", model, card


def test_round_trip_restores_identical_tensors(saved):
    base, model, card = saved
    loaded, card2 = load_weights(base.with_suffix(".safetensors"))
    assert card2 == card and card.sha256 == sha256_of(base.with_suffix(".safetensors"))
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k
    assert not loaded.training


def test_checksum_mismatch_is_refused(saved):
    base, _, _ = saved
    data = bytearray(base.with_suffix(".safetensors").read_bytes())
    data[-1] ^= 0xFF
    base.with_suffix(".safetensors").write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="sha256"):
        load_weights(base.with_suffix(".json"))


@pytest.mark.parametrize("change,message", [
    ({"sha256": "abc"}, "sha256"),
    ({"classes": [{"id": 1, "name": "a", "colour": [1, 2, 3]}]}, "class ids"),
    ({"classes": [{"id": 0, "name": "a", "colour": [1, 2, 300]}]}, "colour"),
    ({"classes": [{"id": 0, "name": "a", "colour": [1, 2, 3]}, {"id": 1, "name": "a", "colour": [1, 2, 3]}]},
     "unique"),
    ({"mean": [0.5, 0.5]}, "same"),
    ({"std": [0.2, 0.0, 0.2]}, "positive"),
    ({"model": "nope"}, "unknown model"),
    ({"overlap": 256}, "overlap"),
    ({"extra": 1}, "unknown field"),
])
def test_invalid_cards_give_clear_errors(change, message):
    fields = {**FIELDS, "sha256": "0" * 64, **change}
    with pytest.raises(WeightsError, match=message):
        WeightsCard.from_dict(fields)


def test_missing_field_is_named(tmp_path):
    fields = dict(FIELDS, sha256="0" * 64)
    del fields["bands"]
    (tmp_path / "c.json").write_text(json.dumps(fields))
    with pytest.raises(WeightsError, match="missing field.*bands"):
        WeightsCard.read(tmp_path / "c.json")


def test_tensors_of_another_model_are_refused(tmp_path):
    card = save_weights(create_model("lale_s2", num_classes=2), FIELDS, tmp_path / "w")  # card says s1
    assert card.model == "lale_s1"
    with pytest.raises(WeightsError, match="do not fit"):
        load_weights(tmp_path / "w.safetensors")


def test_unknown_name_lists_shipped_weights():
    with pytest.raises(WeightsError, match="neither shipped weights"):
        load_weights("no_such_weights")


@pytest.mark.parametrize("name", list_weights())
def test_shipped_weights_match_their_cards(name):
    model, card = load_weights(name)  # verifies sha256 and tensor shapes
    assert card.name == name and model.num_classes == card.num_classes
    command = card.training.get("command", "")
    assert command.startswith("lale-geo") and " train " in command
    assert 0 < card.metrics["macro_f1"] <= 1 and card.metrics["split"] == "val"
    assert load_card(name) == card
