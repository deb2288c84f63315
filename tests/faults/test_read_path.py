"""Every read on the shipped weights' path is checked: the domain guard and per-scene scaling read a
bounded sample through the checked reader, tiles come from strips read once, GDAL's cache is capped,
remote reads time out. A damaged block anywhere (tile, overview, mask, last row) ends in one line naming
the file and the window, never in a silently different map."""

from __future__ import annotations

import ctypes
import dataclasses
import glob
import json
import os
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.enums import Resampling

from lale_geo.errors import RasterIOError
from lale_geo.inference.predict import predict
from lale_geo.io.raster import GDAL_CACHE_BYTES
from lale_geo.weights import load_card
from tests.faults.common import GRID, snapshot, write_scene
from tests.faults.tiff import damage_tile, image_count, tile_extents
from tests.helpers import LocalModel, card_for, serve_folder

CPU = {"device": "cpu", "engine": "torch"}


def guarded_model(num_classes: int = 3):
    """A small local model whose card carries the shipped weights' domain profile: predict runs the
    domain guard (and so reads the scene's sample) as it does with the shipped weights."""
    card = dataclasses.replace(card_for(num_classes, 64, 16), domain=load_card("lale_s1_dubai").domain)
    return LocalModel(num_classes), card


def uint16_scene(path: Path, size: int = 1024, overviews: bool = False, **profile) -> Path:
    rng = np.random.default_rng(0)
    base = rng.integers(200, 3000, (3, size // 8, size // 8)).astype(np.uint16)
    pixels = np.stack([np.kron(b, np.ones((8, 8), np.uint16)) for b in base])
    with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=3, dtype="uint16",
                       crs="EPSG:32633", transform=GRID, tiled=True, blockxsize=128, blockysize=128,
                       photometric="RGB", **profile) as dst:
        dst.write(pixels)
        if overviews:
            dst.build_overviews([2, 4], Resampling.average)
    return path


def jpeg_scene(path: Path, size: int = 256) -> Path:
    return write_scene(path, size, tiled=True, blockxsize=64, blockysize=64, compress="JPEG")


def break_jpeg_tile(path: Path, tile: int, image: int = 0) -> None:
    offset, count = tile_extents(path, image)[tile]
    with open(path, "r+b") as f:
        f.seek(offset + count // 2)
        f.write(b"\xff\xd3\xff\xd5" * 4)


def assert_one_line_read_error(error: pytest.ExceptionInfo, src: Path, *needles: str) -> None:
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"{src}: read failed at "), message
    for needle in needles:
        assert needle in message, message


@pytest.mark.parametrize("tile", [0, 5, 15])  # first, inside, last row and column
def test_a_damaged_jpeg_tile_on_the_guarded_path_names_the_window(tmp_path, tile):
    src = jpeg_scene(tmp_path / "scene.tif")
    break_jpeg_tile(src, tile)
    before = snapshot(tmp_path)
    with pytest.raises(RasterIOError) as error:
        predict(src, tmp_path / "map.tif", model=guarded_model(), **CPU)
    assert_one_line_read_error(error, src, "row ", "col ", "JPEG")
    assert snapshot(tmp_path) == before


def test_a_damaged_overview_of_a_16_bit_scene_is_named_not_used(tmp_path):
    src = uint16_scene(tmp_path / "scene.tif", overviews=True, compress="LZW")
    good = predict(uint16_scene(tmp_path / "good.tif", overviews=True, compress="LZW"), tmp_path / "good_map.tif",
                   model=guarded_model(), **CPU)
    assert "overview level 1 (1/2)" in good.scaling  # the percentiles come from an overview, read checked
    damage_tile(src, 3, 0.1, image=1)  # a tile of the 1/2 overview; the full resolution is intact
    with pytest.raises(RasterIOError) as error:
        predict(src, tmp_path / "map.tif", model=guarded_model(), **CPU)
    assert_one_line_read_error(error, src, "overview level 1 (1/2")
    assert not (tmp_path / "map.tif").exists()


def test_a_damaged_internal_mask_is_named(tmp_path):
    src = tmp_path / "scene.tif"
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
        write_scene(src, 256, tiled=True, blockxsize=64, blockysize=64, compress="DEFLATE")
        with rasterio.open(src, "r+") as dst:
            mask = np.full((256, 256), 255, np.uint8)
            mask[:, :20] = 0
            dst.write_mask(mask)
    mask_image = image_count(src) - 1
    for i in range(len(tile_extents(src, mask_image))):
        damage_tile(src, i, 0.5, length=8, image=mask_image)
    with pytest.raises(RasterIOError) as error:
        predict(src, tmp_path / "map.tif", model=guarded_model(), **CPU)
    assert_one_line_read_error(error, src, "row ", "col ")


def test_scaling_and_guard_read_a_bounded_sample_and_tiles_read_each_block_once(tmp_path, monkeypatch):
    src = uint16_scene(tmp_path / "scene.tif", size=1024)
    windows = []
    real_read = rasterio.io.DatasetReader.read

    def counting_read(self, *args, window=None, out_shape=None, **kwargs):
        if self.name == str(src):  # not the map being written
            assert out_shape is None, "a decimated read decodes the whole scene"
            windows.append(window)
        return real_read(self, *args, window=window, out_shape=out_shape, **kwargs)

    monkeypatch.setattr(rasterio.io.DatasetReader, "read", counting_read)
    summary = predict(src, tmp_path / "map.tif", model=guarded_model(), **CPU)
    assert "4 windows of 128x128 px" in summary.scaling  # 4 % of the 64 blocks, 4 at least
    sample, strips = windows[:4], windows[4:]
    assert all(w.height == w.width == 128 for w in sample)
    assert [(w.row_off, w.height, w.width) for w in strips] == [(y, 128, 1024) for y in range(0, 1024, 128)]


def test_gdal_cache_is_capped_while_reading(tmp_path):
    libs = glob.glob(os.path.join(os.path.dirname(rasterio.__file__), "..", "rasterio.libs", "libgdal*"))
    if not libs:
        pytest.skip("rasterio's bundled libgdal not found (rasterio not from a wheel)")
    gdal = ctypes.CDLL(libs[0])
    gdal.GDALGetCacheMax64.restype = ctypes.c_int64
    seen = []

    class Watch:
        def start(self, tiles):
            seen.append(gdal.GDALGetCacheMax64())

        def advance(self, tiles):
            seen.append(gdal.GDALGetCacheMax64())

    monkey_env = os.environ.pop("GDAL_CACHEMAX", None)
    try:
        predict(write_scene(tmp_path / "scene.tif", 256), tmp_path / "map.tif", model=guarded_model(),
                progress=Watch(), **CPU)
    finally:
        if monkey_env is not None:
            os.environ["GDAL_CACHEMAX"] = monkey_env
    assert seen and set(seen) == {GDAL_CACHE_BYTES}


@pytest.mark.network
def test_a_server_that_stops_answering_ends_in_one_line_after_the_time_out(tmp_path, monkeypatch):
    write_scene(tmp_path / "scene.tif", 512, tiled=True, blockxsize=64, blockysize=64, compress="DEFLATE")
    # The stall starts at a request count (answer_at_most), not at a time. The time-out is the behaviour under
    # test: 5 s, a thousand times what a local answer takes on a loaded machine, so only a request the server
    # holds can meet it (GDAL tries about three held tile requests before the read fails: ~15 s).
    for key, value in {"GDAL_HTTP_TIMEOUT": "5", "GDAL_HTTP_MAX_RETRY": "0", "VSI_CACHE": "FALSE"}.items():
        monkeypatch.setenv(key, value)
    out = tmp_path / "out"
    out.mkdir()
    with serve_folder(tmp_path, answer_at_most=2) as base:  # answers the opening requests, then stalls
        url = f"{base}/scene.tif"
        with pytest.raises(RasterIOError) as error:
            predict(url, out / "map.tif", model=(LocalModel(3), card_for(3, 64, 16)), **CPU)
        with urllib.request.urlopen(f"{base}/__stats", timeout=10) as answer:
            stats = json.loads(answer.read())
    assert stats["stalled"] >= 1, "the run never reached a held request: nothing here tested a stall"
    assert stats["requests"] - stats["stalled"] == 2  # both answered requests were served
    message = str(error.value)
    assert "\n" not in message and message.startswith(url), message
    assert list(out.iterdir()) == []


@pytest.mark.network
def test_stac_accepts_a_map_url(tmp_path):
    from lale_geo.maps.stac import CLASSES_ASSET, write_stac_item

    predict(write_scene(tmp_path / "scene.tif", 128), tmp_path / "map.tif", model=(LocalModel(3), card_for(3, 64, 16)),
            **CPU)
    with serve_folder(tmp_path) as base:
        item, _, _ = write_stac_item(f"{base}/map.tif", tmp_path / "item.json")
    assert item.assets[CLASSES_ASSET].href == f"{base}/map.tif"
    assert item.id == "map"


def test_remote_reads_time_out_and_retry_unless_the_user_set_otherwise(monkeypatch):
    from rasterio.env import getenv

    from lale_geo.io.raster import reading_env

    monkeypatch.delenv("GDAL_HTTP_TIMEOUT", raising=False)
    with reading_env():
        options = getenv()
        assert int(options["GDAL_HTTP_TIMEOUT"]) > 0 and int(options["GDAL_HTTP_MAX_RETRY"]) > 0
        assert int(options["GDAL_CACHEMAX"]) == GDAL_CACHE_BYTES
    monkeypatch.setenv("GDAL_HTTP_TIMEOUT", "5")
    with reading_env():
        assert "GDAL_HTTP_TIMEOUT" not in getenv()  # GDAL reads the user's own variable
