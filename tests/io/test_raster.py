"""lale_geo.io.raster: which pixels are valid, padding of edge tiles, band choice, window reads, the grid
check and the read environment."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import rasterio
from rasterio.enums import ColorInterp
from rasterio.env import getenv
from rasterio.transform import Affine
from rasterio.windows import Window

from lale_geo.errors import InvalidInputError
from lale_geo.io.raster import (
    READ_DEFAULTS,
    check_georeferencing,
    pad_to_tile,
    read_window,
    reading_env,
    select_bands,
    valid_pixels,
    window_name,
)

CARD_RGB = ("red", "green", "blue")
GRID = Affine(2, 0, 500000, 0, -2, 6000000)


def write_tif(path, pixels, *, nodata=None, crs="EPSG:32633", transform=None, colorinterp=None):
    """A small GeoTIFF of (bands, H, W) ``pixels``."""
    count, height, width = pixels.shape
    with rasterio.open(path, "w", driver="GTiff", width=width, height=height, count=count, dtype=pixels.dtype,
                       nodata=nodata, crs=crs, transform=transform or GRID) as dst:
        dst.write(pixels)
        if colorinterp is not None:
            dst.colorinterp = colorinterp
    return path


# valid_pixels ----------------------------------------------------------------------------------------


def test_a_pixel_is_nodata_only_where_every_band_equals_the_nodata_value():
    pixels = np.array([[[0, 0, 5]], [[0, 7, 0]], [[0, 0, 0]]], np.uint8)  # (3 bands, 1, 3)
    np.testing.assert_array_equal(valid_pixels(pixels, 0), [[False, True, True]])
    np.testing.assert_array_equal(valid_pixels(pixels), [[True, True, True]])  # no nodata: all valid
    np.testing.assert_array_equal(valid_pixels(pixels, 9), [[True, True, True]])


def test_float_pixels_are_invalid_where_any_band_is_not_finite_whatever_the_nodata():
    pixels = np.array([[[1.0, np.nan, 2.0, -9.0]], [[1.0, 1.0, np.inf, -9.0]]], np.float32)
    np.testing.assert_array_equal(valid_pixels(pixels), [[True, False, False, True]])
    np.testing.assert_array_equal(valid_pixels(pixels, -9.0), [[True, False, False, False]])
    np.testing.assert_array_equal(valid_pixels(pixels, float("nan")), [[True, False, False, True]])


# pad_to_tile / window_name -----------------------------------------------------------------------------


def test_an_edge_window_is_reflect_padded_to_the_tile_and_a_full_one_is_returned_as_is():
    part = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    padded = pad_to_tile(part, 6)
    assert padded.shape == (2, 6, 6)
    np.testing.assert_array_equal(padded[:, :3, :4], part)
    np.testing.assert_array_equal(padded[:, 3:, :4], part[:, [1, 0, 1]])  # reflected, the edge row not repeated
    np.testing.assert_array_equal(padded[:, :3, 4:], part[:, :, [2, 1]])
    full = np.zeros((6, 6))
    assert pad_to_tile(full, 6) is full


@pytest.mark.parametrize("shape", [(1, 4), (4, 1), (1, 1)])
def test_a_one_pixel_side_is_edge_padded(shape):
    part = np.arange(1, 1 + shape[0] * shape[1], dtype=np.float32).reshape(shape)
    padded = pad_to_tile(part, 4)
    assert padded.shape == (4, 4) and padded.dtype == np.float32
    np.testing.assert_array_equal(padded, np.pad(part, [(0, 4 - shape[0]), (0, 4 - shape[1])], mode="edge"))


def test_window_name_gives_row_col_and_size():
    assert window_name(Window(512, 0, 256, 128)) == "row 0, col 512 (128x256 px)"


# select_bands ------------------------------------------------------------------------------------------


def test_explicit_bands_win_and_are_checked(tmp_path):
    path = write_tif(tmp_path / "s.tif", np.zeros((4, 4, 4), np.uint8))
    with rasterio.open(path) as src:
        assert select_bands(src, CARD_RGB, [3, 2, 1]) == [3, 2, 1]
        with pytest.raises(InvalidInputError, match=r"bands=1,5,2 names band\(s\) \[5\] but the file has 4$"):
            select_bands(src, CARD_RGB, [1, 5, 2])
        with pytest.raises(InvalidInputError, match=r"bands= gives 2 band\(s\), the weights need 3 "
                                                    r"\(red, green, blue\)$"):
            select_bands(src, CARD_RGB, [1, 2])
        with pytest.raises(InvalidInputError, match=r"names band\(s\) \[0\]"):
            select_bands(src, CARD_RGB, [0, 1, 2])


def test_colour_interpretation_orders_the_bands_as_the_card_does(tmp_path):
    interp = [ColorInterp.blue, ColorInterp.undefined, ColorInterp.red, ColorInterp.green]
    path = write_tif(tmp_path / "s.tif", np.zeros((4, 4, 4), np.uint8), colorinterp=interp)
    with rasterio.open(path) as src:
        assert select_bands(src, CARD_RGB) == [3, 4, 1]


def test_alpha_is_skipped_and_a_band_count_that_does_not_match_is_refused(tmp_path):
    interp = [ColorInterp.gray, ColorInterp.undefined, ColorInterp.alpha, ColorInterp.undefined]
    path = write_tif(tmp_path / "s.tif", np.zeros((4, 4, 4), np.uint8), colorinterp=interp)
    with rasterio.open(path) as src:
        assert select_bands(src, ("nir", "red", "green")) == [1, 2, 4]
        with pytest.raises(InvalidInputError, match=r"3 data band\(s\) but the weights need 2 \(nir, red\); "
                                                    r"choose them with bands=") as error:
            select_bands(src, ("nir", "red"))
    assert "\n" not in str(error.value)


# read_window -------------------------------------------------------------------------------------------


def test_a_window_without_invalid_pixels_keeps_the_raster_dtype(tmp_path):
    pixels = np.arange(3 * 8 * 8, dtype=np.uint16).reshape(3, 8, 8)
    path = write_tif(tmp_path / "s.tif", pixels)
    with rasterio.open(path) as src:
        data, valid = read_window(src, [3, 2, 1], 2, 4, 4, fill=[0.5, 0.5, 0.5])
    assert data.dtype == np.uint16 and valid.all()
    np.testing.assert_array_equal(data, pixels[[2, 1, 0], 2:6, 4:8])


def test_invalid_pixels_get_the_fill_values_in_float32(tmp_path):
    pixels = np.full((3, 8, 8), 50, np.uint8)
    pixels[:, 1, 2] = 0  # nodata: every band
    pixels[0, 3, 3] = 0  # one band only: valid
    path = write_tif(tmp_path / "s.tif", pixels, nodata=0)
    with rasterio.open(path) as src:
        data, valid = read_window(src, [1, 2, 3], 0, 0, 8, fill=[1.5, 2.5, 3.5])
    assert data.dtype == np.float32
    assert not valid[1, 2] and valid.sum() == 63
    np.testing.assert_array_equal(data[:, 1, 2], [1.5, 2.5, 3.5])
    np.testing.assert_array_equal(data[:, 3, 3], [0, 50, 50])
    np.testing.assert_array_equal(data[:, valid], pixels[:, valid].astype(np.float32))


def test_nan_pixels_of_a_float_raster_are_filled_and_invalid(tmp_path):
    pixels = np.ones((2, 4, 4), np.float32)
    pixels[1, 0, 0] = np.nan
    path = write_tif(tmp_path / "s.tif", pixels)
    with rasterio.open(path) as src:
        data, valid = read_window(src, [1, 2], 0, 0, 4, fill=[-1.0, -2.0])
    assert not valid[0, 0] and valid.sum() == 15
    np.testing.assert_array_equal(data[:, 0, 0], [-1.0, -2.0])
    assert np.isfinite(data).all()


def test_a_window_past_the_scene_edge_is_reflect_padded(tmp_path):
    pixels = np.arange(10 * 10, dtype=np.uint8).reshape(1, 10, 10)
    path = write_tif(tmp_path / "s.tif", pixels)
    with rasterio.open(path) as src:
        data, valid = read_window(src, [1], 6, 7, 8, fill=[0])
    assert data.shape == (1, 8, 8) and valid.shape == (8, 8)
    np.testing.assert_array_equal(data, pad_to_tile(pixels[:, 6:, 7:], 8))
    assert valid.all()


# check_georeferencing ----------------------------------------------------------------------------------


@pytest.mark.parametrize("transform", [Affine(2, 0.5, 0, 0, -2, 0), Affine(2, 0, 0, 0.5, -2, 0)])
def test_a_rotated_or_sheared_grid_is_refused_in_one_line(tmp_path, transform):
    path = write_tif(tmp_path / "s.tif", np.zeros((1, 4, 4), np.uint8), transform=transform)
    with rasterio.open(path) as src, pytest.raises(InvalidInputError, match="rotated or sheared") as error:
        check_georeferencing(src)
    assert "\n" not in str(error.value) and "gdalwarp" in str(error.value)


def test_a_projected_grid_passes_silently_and_a_geographic_one_warns(tmp_path):
    projected = write_tif(tmp_path / "p.tif", np.zeros((1, 4, 4), np.uint8))
    geographic = write_tif(tmp_path / "g.tif", np.zeros((1, 4, 4), np.uint8), crs="EPSG:4326",
                           transform=Affine(0.001, 0, 10, 0, -0.001, 50))
    with rasterio.open(projected) as src, warnings.catch_warnings():
        warnings.simplefilter("error")
        check_georeferencing(src)
    with rasterio.open(geographic) as src, pytest.warns(UserWarning, match="geographic CRS .*not square"):
        check_georeferencing(src)


# reading_env -------------------------------------------------------------------------------------------


def test_reading_env_applies_every_default_the_user_did_not_set(monkeypatch):
    for name in READ_DEFAULTS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GDAL_DISABLE_READDIR_ON_OPEN", "FALSE")
    with reading_env():
        options = getenv()
    assert "GDAL_DISABLE_READDIR_ON_OPEN" not in options
    assert {k: str(v) for k, v in options.items() if k in READ_DEFAULTS} == {
        k: str(v) for k, v in READ_DEFAULTS.items() if k != "GDAL_DISABLE_READDIR_ON_OPEN"}
