"""Weights as an ONNX model for GeoDeep and Deepness: their metadata, [0, 1] tiles in, the probabilities of
our own pipeline out; GeoDeep runs it."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch

from lale_geo.errors import InvalidInputError, OutputExistsError
from lale_geo.inference.onnx_export import export_for_tools
from lale_geo.weights import random_weights


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    pair = random_weights("lale_s1")
    path = export_for_tools(pair, tmp_path_factory.mktemp("onnx") / "model.onnx", tile_size=64, overlap=16,
                            resolution_cm=30)
    return path, pair


def test_the_metadata_is_what_geodeep_and_deepness_read(exported):
    path, (_, card) = exported
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(meta["model_type"]) == "Segmentor"
    assert json.loads(meta["class_names"]) == {str(c.id): c.name for c in card.classes}
    assert (meta["resolution"], meta["tiles_size"], meta["tiles_overlap"]) == ("30", "64", "25")
    shape = [d.dim_value for d in onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim]
    assert shape == [1, 3, 64, 64]


def test_a_unit_tile_gives_the_probabilities_of_our_normalised_network(exported):
    import onnxruntime

    path, (model, card) = exported
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, (1, 3, 64, 64)).astype(np.float32)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: pixels / 255})[0]
    mean, std = (torch.tensor(v).view(1, -1, 1, 1) for v in (card.mean, card.std))
    with torch.no_grad():
        want = model.eval()((torch.from_numpy(pixels) / 255 - mean) / std).softmax(1).numpy()
    np.testing.assert_allclose(got, want, atol=1e-4)
    np.testing.assert_allclose(got.sum(1), 1.0, atol=1e-5)


def test_no_resolution_and_an_existing_file_are_refused(exported, tmp_path):
    path, pair = exported
    with pytest.raises(InvalidInputError, match="--resolution CM"):
        export_for_tools(pair, tmp_path / "m.onnx", tile_size=64, overlap=16)
    with pytest.raises(OutputExistsError):
        export_for_tools(pair, path, tile_size=64, resolution_cm=30)
    assert not (tmp_path / "m.onnx").exists()


def test_geodeep_runs_the_exported_model(exported, tmp_path):
    geodeep = pytest.importorskip("geodeep", reason="GeoDeep is not installed (pip install geodeep)")
    import rasterio
    from rasterio.transform import from_origin

    path, (_, card) = exported
    rng = np.random.default_rng(2)
    with rasterio.open(tmp_path / "scene.tif", "w", driver="GTiff", width=200, height=150, count=3, dtype="uint8",
                       crs="EPSG:32640", transform=from_origin(300000, 2800000, 0.3, 0.3)) as dst:
        dst.write(rng.integers(0, 256, (3, 150, 200)).astype("uint8"))
    mask = geodeep.run(str(tmp_path / "scene.tif"), str(path), output_type="raw", max_threads=1)
    assert mask.shape == (150, 200) and set(np.unique(mask)) <= {c.id for c in card.classes}


def test_the_papers_form_of_the_decoder_is_exported_apart_from_the_folded_one(tmp_path):
    pytest.importorskip("onnxscript")
    from lale_geo.inference.engines import export_onnx
    from lale_geo.weights import random_weights

    model, card = random_weights("lale_s1", 5)
    folded = export_onnx(model, card, 1, 64, cache_dir=tmp_path)
    model.decoder.fold = False
    papers = export_onnx(model, card, 1, 64, cache_dir=tmp_path)
    assert papers != folded and papers.read_bytes() != folded.read_bytes()
