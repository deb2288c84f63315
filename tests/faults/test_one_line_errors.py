"""Mistakes a user makes with paths and files beside the scene end in one line (exit 1, no traceback,
nothing written): an output path where no file can be made, a malformed weights card, bad --classes
JSON, and class maps of wide or signed types given to info."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lale_geo.inference.predict import predict
from lale_geo.models import create_model
from lale_geo.weights import save_weights
from tests.faults.common import (
    CLI_MODEL,
    assert_failed_in_one_line,
    assert_nothing_lost,
    invoke,
    snapshot,
    write_class_map,
    write_scene,
)
from tests.helpers import LocalModel, card_for

CPU = {"device": "cpu", "engine": "torch"}


@pytest.fixture(scope="module")
def class_map(tmp_path_factory):
    """A small lale-geo map (with its class names and colours), made in this process."""
    folder = tmp_path_factory.mktemp("map")
    src = write_scene(folder / "scene.tif", 64)
    predict(src, folder / "map.tif", model=(LocalModel(3), card_for(3, 64, 16)), **CPU)
    return folder / "map.tif"


# /proc is a folder whose mode says "writable" (to root) but where no file can be created.
UNUSABLE = {
    "predict": lambda src, m: ["predict", src, "-o", "/proc/lale-geo-x.tif", *CLI_MODEL],
    "vectorize": lambda src, m: ["vectorize", m, "-o", "/proc/lale-geo-x.gpkg"],
    "stac": lambda src, m: ["stac", m, "-o", "/proc/lale-geo-x.json"],
    "preview": lambda src, m: ["preview", m, "-o", "/proc/lale-geo-x.png"],
}


@pytest.mark.parametrize("command", sorted(UNUSABLE))
def test_an_output_where_no_file_can_be_made_is_one_line(class_map, command):
    result = invoke(*UNUSABLE[command](class_map.with_name("scene.tif"), class_map))
    assert_failed_in_one_line(result, "/proc/lale-geo-x", codes=(1,))


# --- weights cards -----------------------------------------------------------------------------------

CARD = {"name": "tiny", "model": "lale_s1",
        "classes": [{"id": 0, "name": "a", "colour": [1, 2, 3]}, {"id": 1, "name": "b", "colour": [4, 5, 6]}],
        "bands": ["red", "green", "blue"], "input_range": [0, 255], "mean": [0.5] * 3, "std": [0.25] * 3,
        "tile_size": 64, "overlap": 16, "license": "CC0-1.0"}


@pytest.fixture(scope="module")
def good_weights(tmp_path_factory):
    """Weights of a 2-class lale_s1 and their card (JSON as a dict)."""
    base = tmp_path_factory.mktemp("weights") / "good"
    torch.manual_seed(0)
    save_weights(create_model("lale_s1", num_classes=2), CARD, base)
    return base, json.loads(base.with_suffix(".json").read_text())


def _three_classes(card):
    return dict(card, classes=[*card["classes"], {"id": 2, "name": "c", "colour": [7, 8, 9]}])


# Card change -> words the one line must hold (what is wrong, not only that something is).
BAD_CARDS = {
    "a list": (lambda c: [c], ["JSON object", "list"]),
    "null": (lambda c: None, ["JSON object"]),
    "std as strings": (lambda c: dict(c, std=["0.25"] * 3), ["std", "numbers"]),
    "mean as strings": (lambda c: dict(c, mean=["a"] * 3), ["mean", "numbers"]),
    "bands a number": (lambda c: dict(c, bands=3), ["bands"]),
    "tile_size a string": (lambda c: dict(c, tile_size="64"), ["tile_size", "integer"]),
    "input_range of one": (lambda c: dict(c, input_range=[0]), ["input_range"]),
    "model_kwargs unknown": (lambda c: dict(c, model_kwargs={"nope": 1}), ["model_kwargs", "nope"]),
    "more classes than tensors": (_three_classes, [
        "do not fit", "3 classes", "decoder.classifier.weight (2, 128, 1, 1) in the file, (3, 128, 1, 1) in the model",
        "decoder.classifier.bias (2,) in the file, (3,) in the model"]),
    "another model": (lambda c: dict(c, model="lale_s2"), ["do not fit", "lale_s2", "missing (encoder."]),
}


@pytest.mark.parametrize("case", sorted(BAD_CARDS))
def test_a_malformed_weights_card_is_one_line_saying_what_is_wrong(good_weights, tmp_path, case):
    base, card = good_weights
    change, words = BAD_CARDS[case]
    (tmp_path / "w.json").write_text(json.dumps(change(card)))
    (tmp_path / "w.safetensors").write_bytes(base.with_suffix(".safetensors").read_bytes())
    src = write_scene(tmp_path / "scene.tif", 64)
    before = snapshot(tmp_path)
    result = invoke("predict", src, "-o", tmp_path / "map.tif", "--weights", tmp_path / "w.json",
                    "--engine", "torch", "--device", "cpu")
    assert_failed_in_one_line(result, *words, codes=(1,))
    assert_nothing_lost(tmp_path, before)


# --- --classes JSON ----------------------------------------------------------------------------------

BAD_CLASSES = {
    "not JSON": "{1: Tree}",
    "a list": '["Tree", "Water"]',
    "a string": '"Tree"',
    "a word as id": '{"tree": "Tree"}',
    "a fraction as id": '{"1.5": "Tree"}',
    "a table row without id": '{"classes": [{"name": "Tree"}]}',
    "a table of strings": '{"classes": ["Tree"]}',
    "binary": "\udcff",
}


@pytest.mark.parametrize("command", ["vectorize", "info"])
@pytest.mark.parametrize("case", sorted(BAD_CLASSES))
def test_bad_classes_json_is_one_line(class_map, tmp_path, command, case):
    classes = tmp_path / "classes.json"
    classes.write_bytes(BAD_CLASSES[case].encode("utf-8", "surrogateescape"))
    before = snapshot(tmp_path)
    output = ["-o", tmp_path / "polygons.gpkg"] if command == "vectorize" else []
    result = invoke(command, class_map, *output, "--classes", classes)
    assert_failed_in_one_line(result, str(classes), codes=(1,))
    assert_nothing_lost(tmp_path, before)


# --- info on wide and signed class types -------------------------------------------------------------

def _info(path, *options) -> dict:
    result = invoke("info", path, "--json", *options)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stdout + result.stderr
    return json.loads(result.stdout)


def test_info_on_a_uint32_map_counts_the_ids_present(tmp_path):
    labels = np.zeros((40, 50), np.uint32)
    labels[:10] = 2**32 - 2
    labels[10:12, :5] = 70000
    info = _info(write_class_map(tmp_path / "map.tif", labels, nodata=2**32 - 1))
    counts = {c["id"]: c["pixels"] for c in info["classes"]}
    assert counts == {0: 40 * 50 - 500 - 10, 70000: 10, 2**32 - 2: 500}
    assert info["classes"][0]["area_m2"] == (40 * 50 - 510) * 4.0  # 2 m pixels


@pytest.mark.parametrize("nodata", [None, -1, -32768])
def test_info_counts_negative_class_ids(tmp_path, nodata):
    labels = np.full((30, 30), 3, np.int16)
    labels[:5] = -1
    labels[5:7] = -32768
    labels[7:8] = 32767
    info = _info(write_class_map(tmp_path / "map.tif", labels, nodata=nodata))
    counts = {c["id"]: c["pixels"] for c in info["classes"]}
    expected = {-32768: 60, -1: 150, 3: 900 - 240, 32767: 30}
    assert info["nodata_pixels"] == expected.pop(nodata, 0)
    assert counts == expected
    assert abs(sum(c["share"] for c in info["classes"]) - 1) < 1e-9


def test_good_classes_json_with_negative_ids_is_taken(tmp_path):
    labels = np.array([[0, 2], [-1, 2]], np.int16)
    (tmp_path / "classes.json").write_text('{"0": "Tree", "-1": "Unknown", "2": "Water"}')
    info = _info(write_class_map(tmp_path / "map.tif", labels), "--classes", tmp_path / "classes.json")
    assert {c["id"]: c["name"] for c in info["classes"]} == {-1: "Unknown", 0: "Tree", 2: "Water"}
