import importlib.util

import numpy as np
import pytest
import rasterio

from lale_geo.engines import Engine, create_engine, normalise, shared_engine
from lale_geo.errors import InvalidInputError
from lale_geo.pipeline import predict
from lale_geo.weights import random_weights

INSTALLED = [e for e in ("onnxruntime", "openvino") if importlib.util.find_spec(e)]


def test_normalisation_scales_clips_then_standardises():
    model, card = random_weights()
    tiles = np.random.default_rng(0).integers(0, 4000, (2, 3, 8, 8)).astype(np.float32)
    lo, hi = np.array([10.0, 20, 30]), np.array([3000.0, 3500, 2500])
    scaled = np.clip((tiles - lo[:, None, None]) / (hi - lo)[:, None, None], 0, 1)
    expected = (scaled - np.array(card.mean)[:, None, None]) / np.array(card.std)[:, None, None]
    out = normalise(tiles, (lo, hi), card.mean, card.std)
    assert out.dtype == np.float32 and out.flags.c_contiguous
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("engine", ["torch", *INSTALLED])
def test_every_engine_follows_the_protocol_and_is_shared_per_weights(engine):
    pair = random_weights()
    runner = create_engine(engine, pair, device="cpu", batch_size=2, tile_size=64)
    assert isinstance(runner, Engine) and runner.num_classes == 5 and runner.name == f"{engine}-cpu"
    logits = runner(np.full((2, 3, 64, 64), 100, np.float32), (0, 255))
    assert logits.shape == (2, 5, 64, 64) and logits.dtype == np.float32
    shared = shared_engine(engine, pair, device="cpu", batch_size=2, tile_size=64)
    assert shared is shared_engine(engine, random_weights(), device="cpu", batch_size=2, tile_size=64)  # same tensors
    assert shared is not shared_engine(engine, random_weights(seed=1), device="cpu", batch_size=2, tile_size=64)


@pytest.mark.parametrize("engine", INSTALLED)
def test_engine_maps_agree_with_torch(rasterio_fixtures, tmp_path, engine):
    pair = random_weights()
    src = rasterio_fixtures / "RGB.byte.tif"
    predict(src, tmp_path / "torch.tif", model=pair, engine="torch", device="cpu", tile_size=256)
    summary = predict(src, tmp_path / "e.tif", model=pair, engine=engine, device="cpu", tile_size=256)
    assert summary.engine == f"{engine}-cpu"
    with rasterio.open(tmp_path / "torch.tif") as a, rasterio.open(tmp_path / "e.tif") as b:
        assert (a.read(1) == b.read(1)).mean() >= 0.999
        assert b.tags()["LALE_GEO_ENGINE"] == f"{engine}-cpu"


def test_unknown_engine_is_refused():
    model, card = random_weights()
    with pytest.raises(InvalidInputError, match="unknown engine"):
        create_engine("tensorrt", (model, card))
