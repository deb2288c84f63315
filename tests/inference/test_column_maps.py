"""Wide scenes in column blocks: the same map as a whole-width run (classes, percentages, nodata across
seams), every file block decoded once, finished blocks kept for a resumed run, temporary maps cleaned."""

from __future__ import annotations

import re

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

import lale_geo.inference.strips as strips
from lale_geo import predict
from lale_geo.inference.grid import TileGrid
from lale_geo.inference.strips import Handover, StripSource, column_blocks
from lale_geo.io.raster import read_window
from lale_geo.weights import random_weights

H, W, TILE, OVERLAP = 200, 1300, 64, 16


def wide_scene(path, dtype="uint8", nodata=0, tiled=True):
    rng = np.random.default_rng(3)
    pixels = rng.integers(1, 250, (3, H, W)).astype(dtype)
    if nodata is not None:
        pixels[:, 40:90, 300:460] = nodata  # a hole across the first seam
    layout = dict(tiled=True, blockxsize=64, blockysize=64) if tiled else dict(blockysize=8)
    with rasterio.open(path, "w", driver="GTiff", height=H, width=W, count=3, dtype=dtype, nodata=nodata,
                       crs="EPSG:32633", transform=from_origin(500000, 2800000, 1, 1), **layout) as dst:
        dst.write(pixels)
    return path


def read_all(path):
    with rasterio.open(path) as src:
        return src.read(), src.transform, src.tags()


@pytest.fixture
def narrow_blocks(monkeypatch):
    monkeypatch.setattr(strips, "MAX_COLUMNS", 400)


@pytest.mark.parametrize("dtype,nodata", [("uint8", 0), ("uint16", None)])
def test_column_blocks_give_the_whole_width_map_bit_for_bit(tmp_path, monkeypatch, dtype, nodata):
    scene = wide_scene(tmp_path / "s.tif", dtype, nodata)
    model = random_weights()
    outputs = {}
    for name, max_columns in (("whole", 100_000), ("blocks", 400)):
        monkeypatch.setattr(strips, "MAX_COLUMNS", max_columns)
        paths = [tmp_path / f"{name}{suffix}.tif" for suffix in ("", "_p", "_c")]
        summary = predict(scene, paths[0], model=model, tile_size=TILE, overlap=OVERLAP, probabilities=paths[1],
                          confidence=paths[2])
        outputs[name] = ([read_all(p) for p in paths], summary)
    with rasterio.open(scene) as src:
        blocks = column_blocks(src, TileGrid(H, W, TILE, OVERLAP), [1, 2, 3], 400)
    assert len(blocks) == 4 and 300 < blocks[0].x1 < 460
    (whole, whole_summary), (blocks, blocks_summary) = outputs["whole"], outputs["blocks"]
    for (a, transform_a, tags_a), (b, transform_b, tags_b) in zip(whole, blocks):
        np.testing.assert_array_equal(a, b)
        assert transform_a == transform_b and tags_a == tags_b
    if nodata is not None:
        assert (whole[0][0][0, 40:90, 300:460] == 255).all()  # the hole across the seam is nodata in both
    assert blocks_summary.class_pixels == whole_summary.class_pixels
    # one tile column per seam is computed twice, no more
    assert whole_summary.tiles_computed < blocks_summary.tiles_computed <= whole_summary.tiles_computed + 3 * 4
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["s.tif"] + [f"{n}{s}.tif" for n in ("whole", "blocks") for s in ("", "_p", "_c")])  # no temporary left


def test_every_file_block_is_decoded_once_across_column_blocks(tmp_path):
    scene = wide_scene(tmp_path / "s.tif")
    grid = TileGrid(H, W, TILE, OVERLAP)
    fill = [5.0, 6.0, 7.0]
    with rasterio.open(scene) as src:
        blocks = column_blocks(src, grid, [1, 2, 3], 400)
        assert all(b.file_x0 % 64 == 0 for b in blocks) and blocks[-1].file_x1 == W
        decoded, handover = 0, None
        for i, block in enumerate(blocks):
            following = blocks[i + 1] if i + 1 < len(blocks) else None
            passing_on = Handover(following.read_x0, following.file_x0) if following else None
            source = StripSource(src, [1, 2, 3], fill, columns=block, handover_in=handover, handover_out=passing_on)
            for r, y0 in enumerate(grid.row_origins):
                for c in grid.cols_meeting(block.x0, block.x1):
                    got = source.read(grid_tile(grid, r, c))
                    want = read_window(src, [1, 2, 3], y0, grid.col_origins[c], TILE, fill)
                    np.testing.assert_array_equal(got[0], want[0])
                    np.testing.assert_array_equal(got[1], want[1])
                start, stop = grid.row_band(r)
                valid = source.validity(start, stop - start)
                assert valid.shape == (stop - start, block.width)
            decoded += source.reader.bytes_decoded
            handover = passing_on
        assert decoded == 3 * H * W  # each pixel of the file decoded once, none twice


def grid_tile(grid, r, c):
    return next(t for t in grid.tiles() if (t.row, t.col) == (r, c))


def test_a_striped_file_is_read_in_whole_rows(tmp_path):
    """Its blocks span the whole width: column blocks would decode every strip once per block."""
    scene = wide_scene(tmp_path / "s.tif", tiled=False)
    with rasterio.open(scene) as src:
        assert len(column_blocks(src, TileGrid(H, W, TILE, OVERLAP), [1, 2, 3], 400)) == 1


class StopAfter:
    """A progress that interrupts the run (as Ctrl-C would) once ``tiles`` tiles are done."""

    def __init__(self, tiles: int) -> None:
        self.tiles, self.done = tiles, 0

    def start(self, tiles: int) -> None:
        self.total = tiles

    def advance(self, tiles: int) -> None:
        self.done += tiles
        if self.done >= self.tiles:
            raise KeyboardInterrupt


def test_an_interrupted_wide_run_resumes_with_its_finished_blocks(tmp_path, narrow_blocks):
    scene = wide_scene(tmp_path / "s.tif")
    model = random_weights()
    reference = predict(scene, tmp_path / "ref.tif", model=model, tile_size=TILE, overlap=OVERLAP)
    stop = StopAfter(50)  # the first block has 4 rows x 9 columns of tiles: stop inside the second
    with pytest.raises(KeyboardInterrupt):
        predict(scene, tmp_path / "map.tif", model=model, tile_size=TILE, overlap=OVERLAP, progress=stop)
    kept = [p.name for p in tmp_path.iterdir() if ".columns" in p.name]
    assert len(kept) == 1 and re.search(r"\.columns0-\d+\.tif$", kept[0])  # the finished block, not the one cut short
    resumed = predict(scene, tmp_path / "map.tif", model=model, tile_size=TILE, overlap=OVERLAP, resume=True)
    np.testing.assert_array_equal(read_all(tmp_path / "map.tif")[0], read_all(tmp_path / "ref.tif")[0])
    assert resumed.tiles_computed < reference.tiles_computed  # the finished block was not computed again
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_new_run_removes_the_column_maps_of_an_interrupted_one(tmp_path, narrow_blocks):
    scene = wide_scene(tmp_path / "s.tif")
    model = random_weights()
    with pytest.raises(KeyboardInterrupt):
        predict(scene, tmp_path / "map.tif", model=model, tile_size=TILE, overlap=OVERLAP, progress=StopAfter(50))
    assert [p for p in tmp_path.iterdir() if ".columns" in p.name]
    summary = predict(scene, tmp_path / "map.tif", model=model, tile_size=TILE, overlap=OVERLAP)
    assert summary.tiles_computed == sum(len(TileGrid(H, W, TILE, OVERLAP).row_origins) * len(
        TileGrid(H, W, TILE, OVERLAP).cols_meeting(b.x0, b.x1)) for b in column_blocks_of(scene))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def column_blocks_of(scene):
    with rasterio.open(scene) as src:
        return column_blocks(src, TileGrid(H, W, TILE, OVERLAP), [1, 2, 3])
