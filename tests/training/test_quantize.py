import dataclasses
import importlib.util
import shutil
import subprocess
import sys

import pytest
import rasterio

from lale_geo.errors import InvalidInputError, WeightsError
from lale_geo.inference.predict import predict
from lale_geo.inference.settings import InferenceSettings
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
    card = str(tmp_path / f"{DEFAULT_WEIGHTS}.json")
    with pytest.raises(WeightsError, match="int8.bin: sha256 .* does not match its card"):
        InferenceSettings(weights=card, precision="int8").resolve().create_engine()
    with pytest.warns(UserWarning, match="running fp32 instead of the INT8 model"):  # auto says so, runs fp32
        assert InferenceSettings(weights=card).resolve().settings.precision == "fp32"


_NO_TORCH_RUN = """
import sys
import rioxarray
import lale_geo
from lale_geo.cli.main import cli
try:
    cli(["-q", "predict", {src!r}, "-o", {out!r}])
except SystemExit as e:
    assert not e.code, e.code
labels = lale_geo.segment(rioxarray.open_rasterio({src!r}, chunks=512)).compute()
print("TORCH" if "torch" in sys.modules else "NO-TORCH", int((labels < 5).sum()))
"""


@needs_openvino
def test_int8_runs_read_only_the_card_and_never_import_torch(rasterio_fixtures, tmp_path):
    # torch is most of a run's start-up; the INT8 OpenVINO model needs neither it nor the fp32 tensors
    src, out = rasterio_fixtures / "RGB.byte.tif", tmp_path / "map.tif"
    code = _NO_TORCH_RUN.format(src=str(src), out=str(out))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    word, labelled = result.stdout.split()[-2:]
    assert word == "NO-TORCH" and int(labelled) > 100_000  # segment() labelled the scene too
    with rasterio.open(out) as dst:
        assert dst.tags()["LALE_GEO_PRECISION"] == "int8"


@needs_openvino
def test_damaged_fp32_tensors_stop_int8_runs_too(tmp_path):
    # an INT8 run does not load the fp32 tensors, but a weights set whose files are not its card's is refused
    for path in shipped_weights_dir().glob(f"{DEFAULT_WEIGHTS}.*"):
        shutil.copy(path, tmp_path / path.name)
    tensors = tmp_path / f"{DEFAULT_WEIGHTS}.safetensors"
    tensors.write_bytes(tensors.read_bytes()[:-10] + b"0123456789")
    card = str(tmp_path / f"{DEFAULT_WEIGHTS}.json")
    with pytest.raises(WeightsError, match="safetensors: sha256 .* does not match its card"):
        InferenceSettings(weights=card, precision="int8").resolve().create_engine()
    with pytest.raises(WeightsError, match="does not match its card"):
        InferenceSettings(weights=card, precision="fp32").resolve()


@pytest.mark.slow
@pytest.mark.skipif(not importlib.util.find_spec("nncf"), reason="nncf is not installed (the int8 extra)")
def test_quantize_checks_int8_against_fp32_and_records_the_verdict_in_the_card(tmp_path):
    import numpy as np
    import torch

    from lale_geo.models import create_model
    from lale_geo.training.datasets import Sample
    from lale_geo.training.quantize import quantize
    from lale_geo.weights import save_weights

    torch.manual_seed(0)
    fields = {"name": "tiny", "model": "lale_s1", "bands": ["red", "green", "blue"], "input_range": [0, 255],
              "classes": [{"id": 0, "name": "a", "colour": [1, 2, 3]}, {"id": 1, "name": "b", "colour": [4, 5, 6]}],
              "mean": [0.5] * 3, "std": [0.25] * 3, "tile_size": 128, "overlap": 32, "license": "CC0-1.0"}
    save_weights(create_model("lale_s1", num_classes=2), fields, tmp_path / "tiny")
    rng = np.random.default_rng(0)
    images = [Sample(f"s{i}", rng.integers(0, 256, (3, 160, 160), dtype=np.uint8),
                     (rng.random((160, 160)) > 0.5).astype(np.uint8)) for i in range(2)]
    result = quantize(tmp_path / "tiny.safetensors", None, calibration_tiles=8, samples=(images[:1], images[1:]))
    assert result.model == tmp_path / "tiny.int8.xml" and result.model.is_file()
    assert 0 <= result.pixel_agreement <= 1 and 0 <= result.val_macro_f1 <= 1
    assert result.passed == (result.val_macro_f1 >= result.fp32_val_macro_f1 - 0.005 and result.pixel_agreement >= 0.98)
    assert load_card(tmp_path / "tiny.json").int8 == result.card_entry
    assert result.describe().startswith(f"wrote tiny.int8.xml: val macro F1 {result.val_macro_f1:.4f}")


def test_the_decoders_nodes_are_found_by_their_module_scope_and_nothing_else(tmp_path):
    """The INT8 model keeps the decoder fp32 by name: an exporter that stopped recording module scopes would
    silently quantize everything, so the names are checked against the exported graph."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    from lale_geo.inference.engines import export_onnx
    from lale_geo.training.quantize import decoder_nodes

    model, card = random_weights("lale_s1", 5)
    path = export_onnx(model, card, 2, 64, cache_dir=tmp_path)
    names = set(decoder_nodes(path))
    graph = {n.name: n for n in onnx.load(str(path)).graph.node}
    convs = [n for n in names if n in graph and graph[n].op_type == "Conv"]
    assert len(convs) == 5  # four folded stage projections and the classifier
    assert {f"{n}/WithoutBiases" for n in convs} <= names
    encoder_convs = [n for n, node in graph.items() if node.op_type == "Conv" and n not in names]
    assert encoder_convs  # the encoder is quantized
