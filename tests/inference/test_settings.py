"""Inference settings: the user's choices checked once, completed from the weights card, recorded, and
turned into an engine by one rule."""

import json

import pytest

from lale_geo.errors import InvalidInputError
from lale_geo.inference.settings import InferenceSettings, one_engine_for_all, settings_with
from tests.helpers import LocalModel, card_for

PAIR = (LocalModel(3), card_for(3, tile_size=256, overlap=64))


@pytest.mark.parametrize("kwargs,message", [
    (dict(bands=[0, 1, 2]), "bands=.*1-based band numbers"),
    (dict(bands="321"), "bands=.*a list of 1-based band numbers"),
    (dict(scale=(0, 1, 2)), r"scale=.*\(min, max\)"),
    (dict(tile_size=0), "tile_size=.*above 0"),
    (dict(batch_size=0), "batch_size=0: must be at least 1"),
    (dict(engine="tensorrt"), "engine=tensorrt: unknown; use one of auto, torch, onnxruntime, openvino"),
    (dict(tta="rot"), "tta=rot: unknown"),
    (dict(precision="fp16"), "precision=fp16: unknown"),
    (dict(strict_domain="yes"), "strict_domain=.*True or False"),
])
def test_bad_choices_are_one_line_errors_naming_the_setting(kwargs, message):
    with pytest.raises(InvalidInputError, match=message):
        InferenceSettings(**kwargs)


def test_values_are_normalised_so_equal_choices_compare_equal():
    a = InferenceSettings(bands=[3, 2, 1], scale=[0, 3000])
    assert a == InferenceSettings(bands=(3, 2, 1), scale=(0, 3000)) and a.bands == (3, 2, 1)


def test_an_unknown_option_names_the_nearest_setting():
    with pytest.raises(InvalidInputError, match="tilesize=: unknown option; did you mean tile_size?"):
        settings_with(None, {"tilesize": 256})
    assert settings_with(InferenceSettings(batch_size=4), {"overlap": 8}) == InferenceSettings(batch_size=4, overlap=8)


def test_resolve_takes_the_cards_tiling_and_keeps_its_overlap_ratio_for_another_tile_size():
    resolved = InferenceSettings(device="cpu").resolve(PAIR)
    assert (resolved.tile_size, resolved.overlap, resolved.settings.precision) == (256, 64, "fp32")
    assert InferenceSettings(tile_size=512, device="cpu").resolve(PAIR).overlap == 128
    with pytest.raises(InvalidInputError, match="overlap=256: must be below the tile size"):
        InferenceSettings(overlap=256, device="cpu").resolve(PAIR)
    with pytest.raises(InvalidInputError, match="tile_size=100: must be a multiple of 32"):
        InferenceSettings(tile_size=100, overlap=10, device="cpu").resolve(PAIR)


def test_the_recorded_settings_name_the_weights_by_checksum():
    recorded = json.loads(InferenceSettings(device="cpu").resolve(PAIR).to_json())
    assert recorded["weights_sha256"] == PAIR[1].sha256 and recorded["tile_size"] == 256
    assert recorded["weights"] is None  # an in-memory model has no file name


def test_inside_one_engine_for_all_runs_with_the_same_settings_share_their_engine():
    resolved = InferenceSettings(device="cpu", engine="torch").resolve(PAIR)
    assert resolved.create_engine() is not resolved.create_engine()
    with one_engine_for_all():
        first = resolved.create_engine()
        assert resolved.create_engine() is first
        assert InferenceSettings(device="cpu", engine="torch", batch_size=2).resolve(PAIR).create_engine() is not first
