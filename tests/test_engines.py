import importlib.util

import numpy as np
import pytest
import rasterio

from lale_geo.engines import create_engine, normalise_numpy
from lale_geo.errors import InvalidInputError
from lale_geo.inference import TilePredictor
from lale_geo.pipeline import predict
from lale_geo.weights import random_weights

INSTALLED = [e for e in ("onnxruntime", "openvino") if importlib.util.find_spec(e)]


def test_numpy_normalisation_equals_the_torch_one():
    model, card = random_weights()
    tiles = np.random.default_rng(0).integers(0, 4000, (2, 3, 8, 8)).astype(np.float32)
    scale = (np.array([10.0, 20, 30]), np.array([3000.0, 3500, 2500]))
    expected = TilePredictor(model, card.mean, card.std, "cpu").normalise(tiles, scale).numpy()
    np.testing.assert_allclose(normalise_numpy(tiles, scale, card.mean, card.std), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("engine", INSTALLED)
def test_engine_maps_agree_with_torch(rasterio_fixtures, tmp_path, engine):
    pair = random_weights()
    src = rasterio_fixtures / "RGB.byte.tif"
    predict(src, tmp_path / "torch.tif", model_and_card=pair, engine="torch", device="cpu", tile_size=256)
    summary = predict(src, tmp_path / "e.tif", model_and_card=pair, engine=engine, device="cpu", tile_size=256)
    assert summary.engine == f"{engine}-cpu"
    with rasterio.open(tmp_path / "torch.tif") as a, rasterio.open(tmp_path / "e.tif") as b:
        assert (a.read(1) == b.read(1)).mean() >= 0.999
        assert b.tags()["LALE_GEO_ENGINE"] == f"{engine}-cpu"


def test_unknown_engine_is_refused():
    model, card = random_weights()
    with pytest.raises(InvalidInputError, match="unknown engine"):
        create_engine("tensorrt", model, card)
