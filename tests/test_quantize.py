import dataclasses
import importlib.util
import shutil

import pytest
import rasterio

from lale_geo.errors import InvalidInputError, WeightsError
from lale_geo.pipeline import predict
from lale_geo.settings import InferenceSettings
from lale_geo.weights import DEFAULT_WEIGHTS, load_card, random_weights, shipped_weights_dir

needs_openvino = pytest.mark.skipif(not importlib.util.find_spec("openvino"), reason="openvino is not installed")


def test_auto_keeps_fp32_without_a_passed_int8_model_and_int8_says_why():
    pair = random_weights()
    assert InferenceSettings(precision="auto").resolve(pair).settings.precision == "fp32"
    with pytest.raises(InvalidInputError, match="precision=int8: the weights have no INT8 model"):
        InferenceSettings(precision="int8").resolve(pair)
    failed = dataclasses.replace(pair[1], int8={"passed": False, "tile_size": 512, "batch": 2})
    assert InferenceSettings(precision="auto").resolve((pair[0], failed)).settings.precision == "fp32"


@needs_openvino
def test_the_shipped_int8_model_is_used_where_its_card_allows_it():
    card = load_card(DEFAULT_WEIGHTS)
    assert card.int8["passed"] and card.int8["val_macro_f1"] >= card.int8["fp32_val_macro_f1"] - 0.005
    assert InferenceSettings().resolve().settings.precision == "int8"
    for other in ({"engine": "torch"}, {"tile_size": 512}, {"precision": "fp32"}, {"batch_size": 3}):
        assert InferenceSettings(**other).resolve().settings.precision == "fp32", other
    with pytest.raises(InvalidInputError, match="made for 256 px tiles"):
        InferenceSettings(precision="int8", tile_size=512).resolve()


@needs_openvino
def test_int8_maps_agree_with_fp32_on_a_real_scene_and_say_so(rasterio_fixtures, tmp_path):
    src = rasterio_fixtures / "RGB.byte.tif"
    int8 = predict(src, tmp_path / "int8.tif", device="cpu")
    fp32 = predict(src, tmp_path / "fp32.tif", device="cpu", precision="fp32")
    assert int8.engine == "openvino-cpu-int8" and fp32.engine == "openvino-cpu"
    with rasterio.open(tmp_path / "int8.tif") as a, rasterio.open(tmp_path / "fp32.tif") as b:
        assert a.tags()["LALE_GEO_PRECISION"] == "int8" and b.tags()["LALE_GEO_PRECISION"] == "fp32"
        agree = (a.read(1) == b.read(1)).mean()
    assert agree >= 0.95


@needs_openvino
def test_a_tampered_int8_model_is_refused(tmp_path):
    for path in shipped_weights_dir().glob(f"{DEFAULT_WEIGHTS}.*"):
        shutil.copy(path, tmp_path / path.name)
    binary = tmp_path / f"{DEFAULT_WEIGHTS}.int8.bin"
    data = bytearray(binary.read_bytes())
    data[1000] ^= 0xFF
    binary.write_bytes(bytes(data))
    resolved = InferenceSettings(weights=str(tmp_path / f"{DEFAULT_WEIGHTS}.json")).resolve()
    assert resolved.settings.precision == "int8"
    with pytest.raises(WeightsError, match="does not match its card"):
        resolved.create_engine()
