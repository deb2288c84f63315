"""Damaged weights files: every file of a weights set is checked against its card (INT8 graph and
weights, fp32 tensors); a damaged one is refused in one line naming it, or, under precision auto, the
INT8 model is skipped for fp32 with a warning that says why."""

from __future__ import annotations

import hashlib
import json
import shutil
import warnings

import pytest

from lale_geo.errors import WeightsError
from lale_geo.inference.settings import InferenceSettings
from lale_geo.weights import DEFAULT_WEIGHTS, load_weights, shipped_weights_dir

needs_openvino = pytest.mark.skipif(not __import__("importlib").util.find_spec("openvino"),
                                    reason="openvino is not installed")


def copy_weights(folder):
    for path in shipped_weights_dir().glob(f"{DEFAULT_WEIGHTS}.*"):
        shutil.copy(path, folder / path.name)
    return folder / f"{DEFAULT_WEIGHTS}.json"


def change_one_character(path, needle: bytes, replacement: bytes) -> None:
    data = path.read_bytes()
    assert needle in data
    path.write_bytes(data.replace(needle, replacement, 1))


def test_the_shipped_card_records_every_int8_file():
    card = json.loads((shipped_weights_dir() / f"{DEFAULT_WEIGHTS}.json").read_text())
    for key, suffix in (("sha256", ".int8.bin"), ("xml_sha256", ".int8.xml")):
        data = (shipped_weights_dir() / f"{DEFAULT_WEIGHTS}{suffix}").read_bytes()
        assert card["int8"][key] == hashlib.sha256(data).hexdigest()


@needs_openvino
@pytest.mark.parametrize("precision", ["int8", "auto"])
def test_a_changed_character_in_the_int8_graph_is_caught(tmp_path, precision):
    card = copy_weights(tmp_path)
    xml = tmp_path / f"{DEFAULT_WEIGHTS}.int8.xml"
    text = xml.read_bytes()
    at = text.index(b'value="', len(text) // 2) + len('value="')
    xml.write_bytes(text[:at] + (b"7" if text[at:at + 1] != b"7" else b"3") + text[at + 1:])
    settings = InferenceSettings(weights=str(card), precision=precision)
    if precision == "int8":
        with pytest.raises(WeightsError, match=r"int8\.xml: sha256 .* does not match its card") as error:
            settings.resolve().create_engine()
        assert "\n" not in str(error.value)
    else:
        with pytest.warns(UserWarning, match="does not match its card.*running fp32 instead of the INT8 model"):
            resolved = settings.resolve()
        assert resolved.settings.precision == "fp32"
        assert resolved.create_engine().name in ("openvino-cpu", "onnxruntime-cpu", "torch-cpu")


@needs_openvino
def test_a_truncated_int8_graph_without_a_recorded_checksum_fails_in_one_line(tmp_path):
    card_path = copy_weights(tmp_path)
    card = json.loads(card_path.read_text())
    del card["int8"]["xml_sha256"]  # a card from before the graph's checksum was recorded
    card_path.write_text(json.dumps(card))
    xml = tmp_path / f"{DEFAULT_WEIGHTS}.int8.xml"
    xml.write_bytes(xml.read_bytes()[: len(xml.read_bytes()) // 2])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        resolved = InferenceSettings(weights=str(card_path), precision="int8").resolve()
    with pytest.raises(WeightsError, match="OpenVINO cannot read the model") as error:
        resolved.create_engine()
    assert "\n" not in str(error.value) and str(xml) in str(error.value)


def test_unparsable_tensors_whose_checksum_matches_the_card_fail_in_one_line(tmp_path):
    card_path = copy_weights(tmp_path)
    tensors = tmp_path / f"{DEFAULT_WEIGHTS}.safetensors"
    tensors.write_bytes(b"\xff" * 64)  # not a safetensors header
    card = json.loads(card_path.read_text())
    card["sha256"] = hashlib.sha256(tensors.read_bytes()).hexdigest()
    card_path.write_text(json.dumps(card))
    with pytest.raises(WeightsError, match="not a readable safetensors file") as error:
        load_weights(str(card_path))
    assert "\n" not in str(error.value) and str(tensors) in str(error.value)


@pytest.mark.parametrize("cut", [0, 8, 100, 1000])
def test_truncated_tensors_are_refused_by_their_checksum(tmp_path, cut):
    card_path = copy_weights(tmp_path)
    tensors = tmp_path / f"{DEFAULT_WEIGHTS}.safetensors"
    tensors.write_bytes(tensors.read_bytes()[:cut])
    with pytest.raises(WeightsError, match="does not match its card"):
        load_weights(str(card_path))
