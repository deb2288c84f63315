"""The scene's bounded sample: block-aligned windows or an overview level, never the whole scene."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.enums import Resampling
from rasterio.transform import from_origin

from lale_geo.io.scene_sample import MAX_PIXELS, sample_scene, sample_windows


def write(path, size=1024, block=128, overviews=False, dtype="uint16"):
    rng = np.random.default_rng(0)
    pixels = rng.integers(100, 4000, (3, size, size)).astype(dtype)
    with rasterio.open(path, "w", driver="GTiff", height=size, width=size, count=3, dtype=dtype, tiled=True,
                       blockxsize=block, blockysize=block, crs="EPSG:32633",
                       transform=from_origin(0, 0, 1, 1)) as dst:
        dst.write(pixels)
        if overviews:
            dst.build_overviews([2, 4], Resampling.average)
    return path, pixels


def test_windows_are_whole_blocks_spread_over_the_scene(tmp_path):
    path, _ = write(tmp_path / "s.tif", 4096, 128, dtype="uint8")  # 1024 blocks: 16 windows, the most
    with rasterio.open(path) as src:
        windows = sample_windows(src, 1)
    assert len(windows) == 16
    assert all(w.row_off % 128 == 0 and w.col_off % 128 == 0 and w.height == w.width == 128 for w in windows)
    for offsets in ({w.row_off for w in windows}, {w.col_off for w in windows}):
        assert len(offsets) == 4 and min(offsets) < 1024 and max(offsets) >= 3072  # over the whole scene


@pytest.mark.parametrize(("size", "block", "expected"), [(3072, 128, 24 * 24 // 25 + 1), (1024, 128, 4),
                                                          (512, 128, 4), (256, 128, 4), (100, 128, 1)])
def test_a_file_is_sampled_from_a_few_percent_of_its_blocks_four_at_least(tmp_path, size, block, expected):
    path, _ = write(tmp_path / "s.tif", size, block, dtype="uint8")
    with rasterio.open(path) as src:
        windows = sample_windows(src, 1)
    blocks = (-(-size // block)) ** 2
    assert len(windows) == min(expected, 16) and len(windows) <= max(4, 0.05 * blocks)
    assert len(set(windows)) == len(windows)


def test_the_sample_holds_the_windows_pixels(tmp_path):
    path, pixels = write(tmp_path / "s.tif", 2048, 128)
    with rasterio.open(path) as src:
        sample = sample_scene(src, [3, 1])
        windows = sample_windows(src, 3)
    want = np.concatenate([pixels[[2, 0], w.row_off:w.row_off + w.height, w.col_off:w.col_off + w.width]
                           .reshape(2, -1) for w in windows], axis=1)
    np.testing.assert_array_equal(sample.pixels, want)
    assert sample.source == "11 windows of 128x128 px"


def test_a_file_with_overviews_is_sampled_from_one_level(tmp_path):
    path, _ = write(tmp_path / "s.tif", 2048, 256, overviews=True)
    with rasterio.open(path) as src:
        sample = sample_scene(src, [1, 2, 3])
    assert sample.source == "overview level 2 (1/4)"
    assert sample.pixels.shape == (3, 512 * 512)


def test_the_sample_is_capped(tmp_path):
    path, _ = write(tmp_path / "s.tif", 4096, 512, dtype="uint8")
    with rasterio.open(path) as src:
        sample = sample_scene(src, [1])
    assert sample.pixels.shape[1] <= MAX_PIXELS
