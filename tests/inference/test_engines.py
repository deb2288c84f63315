import importlib.util

import numpy as np
import pytest
import rasterio

from lale_geo.errors import InvalidInputError
from lale_geo.inference.engines import Engine, block_engine, create_engine, normalise
from lale_geo.inference.predict import predict
from lale_geo.weights import random_weights

INSTALLED = [e for e in ("onnxruntime", "openvino") if importlib.util.find_spec(e)]


@pytest.mark.parametrize("dtype", [np.float32, np.uint16, np.int32, np.float64])
def test_normalisation_scales_clips_then_standardises(dtype):
    # tiles arrive in the raster's own dtype (float32 where masked pixels were filled)
    model, card = random_weights()
    tiles = np.random.default_rng(0).integers(0, 4000, (2, 3, 8, 8)).astype(dtype)
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
    shared = block_engine(engine, pair, device="cpu", batch_size=2, tile_size=64)
    assert shared is block_engine(engine, random_weights(), device="cpu", batch_size=2, tile_size=64)  # same tensors
    assert shared is not block_engine(engine, random_weights(seed=1), device="cpu", batch_size=2, tile_size=64)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as other:  # another Dask thread: its own CPU engine, torch's is shared
        theirs = other.submit(block_engine, engine, pair, device="cpu", batch_size=2, tile_size=64).result()
    assert (theirs is shared) == (engine == "torch")


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


@pytest.mark.skipif("openvino" not in INSTALLED, reason="openvino is not installed")
def test_openvino_streams_give_torch_logits_and_keep_two_batches_apart():
    from lale_geo.inference.engines import OpenVINOEngine, TorchEngine

    model, card = random_weights()
    engine = OpenVINOEngine(model, card, batch_size=8, tile_size=64, threads=2)
    assert engine.part == 2  # the batch runs as four parallel requests of two tiles
    rng = np.random.default_rng(0)
    first, second = (rng.integers(0, 255, (8, 3, 64, 64)).astype(np.float32) for _ in range(2))
    wait_first = engine.start(first, (0, 255))
    wait_second = engine.start(second, (0, 255))  # two batches in flight at once
    reference = TorchEngine(model, card.mean, card.std, "cpu")
    np.testing.assert_allclose(wait_first(), reference(first, (0, 255)), atol=2e-3)
    np.testing.assert_allclose(wait_second(), reference(second, (0, 255)), atol=2e-3)


def test_the_tile_loop_overlaps_batches_and_keeps_grid_order():
    """An engine that computes in the background gets the next batch before the previous one is
    collected; the stitched result equals a plain engine's."""
    from lale_geo.inference.engines import TorchEngine
    from lale_geo.inference.grid import TileGrid
    from lale_geo.inference.tile_loop import ArraySource, predict_region
    from tests.helpers import LocalModel

    plain = TorchEngine(LocalModel(3, radius=1), (0.5,) * 3, (0.25,) * 3, "cpu")
    events = []

    class Background:
        num_classes, name = plain.num_classes, "background"

        def start(self, tiles, scale):
            index = len([e for e in events if e[0] == "start"])
            events.append(("start", index))
            logits = plain(tiles, scale)

            def wait():
                events.append(("wait", index))
                return logits
            return wait

        def __call__(self, tiles, scale):
            return self.start(tiles, scale)()

    image = np.random.default_rng(1).integers(0, 255, (3, 300, 260)).astype(np.float32)
    grid = TileGrid(300, 260, 64, 16)
    region = (0, 0, 300, 260)
    expected = predict_region(ArraySource(image), grid, region, plain, (0, 255), 4)
    got = predict_region(ArraySource(image), grid, region, Background(), (0, 255), 4)
    np.testing.assert_allclose(got, expected, atol=1e-5)  # a tile out of order would be off by far more
    starts = [i for kind, i in events if kind == "start"]
    assert events[:3] == [("start", 0), ("start", 1), ("wait", 0)] and len(starts) == -(-len(grid) // 4)


def test_device_type_and_cpu_threads_agree_with_torch_without_importing_it():
    # the INT8 path decides the device and its threads before (and without) torch
    import subprocess
    import sys

    code = ("import sys\nfrom lale_geo.inference.engines import cpu_threads, device_type\n"
            "answer = (device_type('auto'), device_type('cpu'), cpu_threads(), 'torch' in sys.modules)\n"
            "import torch\nfrom lale_geo.inference.engines import resolve_device\n"
            "print(answer == (resolve_device('auto').type, 'cpu', torch.get_num_threads(), False), answer)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.startswith("True"), result.stdout + result.stderr[-1000:]


@pytest.mark.skipif("openvino" not in INSTALLED, reason="openvino is not installed")
def test_openvino_keeps_compiled_models_in_the_cache_and_works_without_one(tmp_path, monkeypatch):
    pair = random_weights()
    tiles = np.random.default_rng(1).integers(0, 256, (2, 3, 64, 64)).astype(np.uint8)
    monkeypatch.setenv("LALE_GEO_CACHE", str(tmp_path / "cache"))
    first = create_engine("openvino", pair, batch_size=2, tile_size=64, threads=1)(tiles, (0, 255))
    assert list((tmp_path / "cache" / "openvino").glob("*.blob"))
    again = create_engine("openvino", pair, batch_size=2, tile_size=64, threads=1)(tiles, (0, 255))
    np.testing.assert_array_equal(first, again)  # the compiled model loaded from the cache
    for blob in (tmp_path / "cache" / "openvino").glob("*.blob"):  # as a run killed while writing it leaves it
        blob.chmod(0o600)
        blob.write_bytes(blob.read_bytes()[:1000])
    np.testing.assert_array_equal(create_engine("openvino", pair, batch_size=2, tile_size=64, threads=1)(
        tiles, (0, 255)), first)  # OpenVINO compiles anew
    # a cache folder that cannot be created: OpenVINO gets no cache folder and simply compiles
    from lale_geo.inference.engines.openvino_engine import _openvino_core

    assert _openvino_core().get_property("CACHE_DIR") == str(tmp_path / "cache" / "openvino")
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("LALE_GEO_CACHE", str(tmp_path / "file"))
    assert _openvino_core().get_property("CACHE_DIR") == ""
