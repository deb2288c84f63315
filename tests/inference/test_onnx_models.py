"""ONNX models from other tools run through our pipeline: their card from GeoDeep/Deepness metadata (or a card
beside them), OpenVINO at our batch, probabilities blended as log-probabilities: the map of the same network
run as our own weights."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import rasterio
from rasterio.transform import from_origin

from lale_geo.errors import InvalidInputError, WeightsError
from lale_geo.inference.onnx_export import export_for_tools
from lale_geo.inference.onnx_models import onnx_card
from lale_geo.inference.predict import predict
from lale_geo.weights import random_weights


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    pair = random_weights("lale_s1")
    folder = tmp_path_factory.mktemp("onnx")
    return export_for_tools(pair, folder / "tool.onnx", tile_size=64, overlap=16, resolution_cm=30), pair


def scene(path):
    rng = np.random.default_rng(3)
    with rasterio.open(path, "w", driver="GTiff", width=230, height=170, count=3, dtype="uint8", crs="EPSG:32640",
                       transform=from_origin(300000, 2800000, 0.3, 0.3)) as dst:
        dst.write(rng.integers(0, 256, (3, 170, 230)).astype("uint8"))
    return path


def with_metadata(src, dst, **changes):
    graph = onnx.load(str(src))
    meta = {p.key: p.value for p in graph.metadata_props} | changes
    del graph.metadata_props[:]
    for key, value in meta.items():
        if value is not None:
            prop = graph.metadata_props.add()
            prop.key, prop.value = key, value
    onnx.save(graph, str(dst))
    return dst


def test_an_onnx_model_gives_the_map_of_the_same_network(exported, tmp_path):
    path, pair = exported
    source = scene(tmp_path / "scene.tif")
    ours = predict(source, tmp_path / "ours.tif", model=pair, device="cpu", engine="torch", tile_size=64, overlap=16,
                   probabilities=tmp_path / "ours_p.tif")
    tool = predict(source, tmp_path / "tool.tif", weights=str(path), probabilities=tmp_path / "tool_p.tif")
    assert tool.engine == "openvino-cpu-onnx" and ours.tiles == tool.tiles
    with rasterio.open(tmp_path / "ours.tif") as a, rasterio.open(tmp_path / "tool.tif") as b:
        # log-probabilities differ from logits by one value per pixel and tile: the blend ranks classes alike
        assert (a.read(1) == b.read(1)).mean() > 0.999
        assert json.loads(b.tags()["LALE_GEO_CLASSES"]) == pair[1].class_names
    with rasterio.open(tmp_path / "ours_p.tif") as a, rasterio.open(tmp_path / "tool_p.tif") as b:
        assert np.abs(a.read().astype(int) - b.read().astype(int)).max() <= 2  # percent


def test_the_card_comes_from_geodeep_and_deepness_metadata(exported, tmp_path):
    path, pair = exported
    card = onnx_card(path)
    assert (card.tile_size, card.overlap, card.class_names) == (64, 16, pair[1].class_names)
    assert card.mean == (0.0, 0.0, 0.0) and card.std == (1.0, 1.0, 1.0)  # the graph normalises itself
    deepness = with_metadata(path, tmp_path / "deepness.onnx", class_names="{0: 'background', 1: 'field'}",
                             tiles_overlap="50", standardization_mean="[0.5, 0.5, 0.5]")
    card = onnx_card(deepness)
    assert card.class_names == ["background", "field"] and card.overlap == 32 and card.mean == (0.5, 0.5, 0.5)
    (tmp_path / "deepness.json").write_text(json.dumps(dict(card.to_dict(), name="from the card beside")))
    assert onnx_card(deepness).name == "from the card beside"


@pytest.mark.parametrize("changes,message", [
    ({"class_names": None}, "no class_names"),
    ({"model_type": '"Detector"'}, "a Detector model"),
    ({"class_names": "{'a': 'x'}"}, "keys must be class ids"),
])
def test_models_we_cannot_use_are_refused_in_one_line(exported, tmp_path, changes, message):
    bad = with_metadata(exported[0], tmp_path / "bad.onnx", **changes)
    with pytest.raises(WeightsError, match=message):
        onnx_card(bad)


def test_an_onnx_model_runs_on_openvino_only(exported, tmp_path):
    with pytest.raises(InvalidInputError, match="runs on OpenVINO"):
        predict(scene(tmp_path / "scene.tif"), tmp_path / "m.tif", weights=str(exported[0]), engine="torch")
    assert not (tmp_path / "m.tif").exists()
