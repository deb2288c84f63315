"""The strip reader: tiles cut from strips equal windowed reads, every row is read once, validity comes
with the pixels."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from lale_geo.inference.grid import TileGrid
from lale_geo.inference.strips import RowReader, StripSource, read_region
from lale_geo.io.raster import read_window, window_validity


def scene(path, height, width, dtype="uint8", nodata=None, block=64, tiled=True, holes=True):
    rng = np.random.default_rng(1)
    if np.dtype(dtype).kind == "f":
        pixels = rng.normal(100, 30, (3, height, width)).astype(dtype)
        if holes:
            pixels[:, 10:30, 40:90] = np.nan
    else:
        pixels = rng.integers(1, 250, (3, height, width)).astype(dtype)
        if holes and nodata is not None:
            pixels[:, 100:140, 5:70] = nodata
    layout = {"tiled": True, "blockxsize": block, "blockysize": block} if tiled else {"blockysize": 3}
    with rasterio.open(path, "w", driver="GTiff", height=height, width=width, count=3, dtype=dtype, nodata=nodata,
                       crs="EPSG:32633", transform=from_origin(0, 0, 1, 1), **layout) as dst:
        dst.write(pixels)
    return path


CASES = {"uint8 nodata, tiled": dict(nodata=0), "uint16 no mask, striped": dict(dtype="uint16", tiled=False),
         "float32 NaN": dict(dtype="float32")}


@pytest.mark.parametrize("case", CASES)
def test_tiles_from_strips_equal_windowed_reads(tmp_path, case):
    path = scene(tmp_path / "s.tif", 300, 230, **CASES[case])
    fill = [7.0, 8.0, 9.0]
    grid = TileGrid(300, 230, 96, 24)
    with rasterio.open(path) as src:
        source = StripSource(src, [1, 2, 3], fill)
        for tile in grid.tiles():
            got, got_valid = source.read(tile)
            want, want_valid = read_window(src, [1, 2, 3], tile.y0, tile.x0, tile.size, fill)
            assert got.dtype == want.dtype
            np.testing.assert_array_equal(got, want)
            np.testing.assert_array_equal(got_valid, want_valid)
            if tile.col == len(grid.col_origins) - 1:  # what the stitcher hands out after this tile row
                start, stop = grid.row_band(tile.row)
                np.testing.assert_array_equal(source.validity(start, stop - start),
                                              window_validity(src, [1, 2, 3],
                                                              rasterio.windows.Window(0, start, 230, stop - start)))


def test_every_row_is_read_once_in_block_rows(tmp_path, monkeypatch):
    path = scene(tmp_path / "s.tif", 500, 200, block=64)
    reads = []
    with rasterio.open(path) as src:
        real_read = src.read

        def counting_read(*args, window=None, **kwargs):
            reads.append(window)
            return real_read(*args, window=window, **kwargs)

        monkeypatch.setattr(src, "read", counting_read)
        source = StripSource(src, [1, 2, 3], [0, 0, 0])
        for tile in TileGrid(500, 200, 96, 32).tiles():
            source.read(tile)
        rows = [(int(w.row_off), int(w.row_off + w.height)) for w in reads]
        assert rows == [(y, min(y + 64, 500)) for y in range(0, 500, 64)]  # each block row once, in order
        assert all(w.col_off == 0 and w.width == 200 for w in reads)
        assert source.reader.bytes_decoded == 3 * 500 * 200


def test_the_reader_holds_a_few_strips_not_the_scene(tmp_path):
    path = scene(tmp_path / "s.tif", 2000, 64, block=64)
    with rasterio.open(path) as src:
        source = StripSource(src, [1, 2, 3], [0, 0, 0])
        grid = TileGrid(2000, 64, 64, 16)
        held = 0
        for tile in grid.tiles():
            source.read(tile)
            held = max(held, sum(v.shape[0] for _, _, v in source.reader._chunks))
            start, stop = grid.row_band(tile.row)
            source.validity(start, stop - start)
        assert held <= 3 * 64
        assert source._valid_rows == []


def test_a_resumed_stream_starts_reading_at_its_tile_row(tmp_path):
    path = scene(tmp_path / "s.tif", 300, 100)
    grid = TileGrid(300, 100, 96, 24)
    with rasterio.open(path) as src:
        reader = RowReader(src, [1, 2, 3], first_row=grid.row_origins[2])
        pixels, _ = reader.rows(grid.row_origins[2], grid.row_origins[2] + 96)
        np.testing.assert_array_equal(pixels, src.read(window=rasterio.windows.Window(0, grid.row_origins[2], 100, 96)))
        assert reader.bytes_decoded < 3 * 300 * 100
        with pytest.raises(ValueError, match="released or never read"):
            reader.rows(0, 10)


def test_a_region_is_read_in_one_window_with_its_validity(tmp_path):
    path = scene(tmp_path / "s.tif", 200, 120, dtype="float32")
    with rasterio.open(path) as src:
        pixels, valid = read_region(src, [1, 2, 3], 0, 30, 300, 300)  # clipped to the scene
        assert pixels.shape == (3, 200, 90)
        np.testing.assert_array_equal(valid, window_validity(src, [1, 2, 3], rasterio.windows.Window(30, 0, 90, 200)))
