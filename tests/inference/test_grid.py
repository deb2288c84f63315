import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lale_geo.inference.grid import Tile, TileGrid, axis_origins
from lale_geo.io.raster import read_padded


@settings(max_examples=200, deadline=None)
@given(height=st.integers(1, 700), width=st.integers(1, 700), tile=st.integers(8, 300),
       overlap_frac=st.floats(0, 0.9))
def test_every_pixel_covered_and_weights_sum_to_one(height, width, tile, overlap_frac):
    overlap = min(int(tile * overlap_frac), tile - 1)
    grid = TileGrid(height, width, tile, overlap)
    total = np.zeros((max(height, tile), max(width, tile)))
    for t in grid.tiles():
        w = grid.weights(t)
        assert (w >= 0).all()
        total[t.y0:t.y0 + tile, t.x0:t.x0 + tile] += w
    np.testing.assert_allclose(total[:height, :width], 1.0, atol=1e-5)
    assert (total[height:] == 0).all() and (total[:, width:] == 0).all()


@given(length=st.integers(1, 5000), tile=st.integers(8, 600), overlap=st.integers(0, 599))
def test_origins_stride_and_stay_inside(length, tile, overlap):
    if overlap >= tile:
        with pytest.raises(ValueError):
            axis_origins(length, tile, overlap)
        return
    origins = axis_origins(length, tile, overlap)
    assert origins[0] == 0
    assert origins[-1] == max(length - tile, 0)
    steps = np.diff(origins)
    assert (steps > 0).all() and (steps <= tile - overlap).all()  # overlaps are at least `overlap`


def test_weights_are_flat_at_the_scene_border_and_ramp_inside():
    grid = TileGrid(1000, 1000, 256, 64)
    first = grid.weights(next(grid.tiles()))
    assert first[0, 0] == pytest.approx(1.0) and first[100, 0] == pytest.approx(1.0)
    assert first[0, 255] < 0.1  # toward its right neighbour the weight has ramped down
    profile = first[0, 192:]
    assert (np.diff(profile) <= 1e-7).all()


def test_scene_smaller_than_one_tile():
    grid = TileGrid(20, 30, 64, 16)
    assert len(grid) == 1 and grid.row_band(0) == (0, 20)


def test_row_bands_partition_the_scene():
    grid = TileGrid(1000, 300, 256, 64)
    bands = [grid.row_band(r) for r in range(grid.shape[0])]
    assert bands[0][0] == 0 and bands[-1][1] == 1000
    assert all(a[1] == b[0] for a, b in zip(bands, bands[1:]))


def test_read_padded_reflects_past_the_edge():
    image = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    tile = read_padded(image, Tile(0, 0, 0, 0, 6))
    assert tile.shape == (2, 6, 6)
    np.testing.assert_array_equal(tile[:, :3, :4], image)
    np.testing.assert_array_equal(tile[:, 3, :4], image[:, 1])  # reflect, edge not repeated
    np.testing.assert_array_equal(tile[:, :3, 4], image[:, :, 2])


@pytest.mark.parametrize("height,width,tile,overlap,block,threads", [
    (4000, 4000, 256, 64, 4096, 2), (4000, 4000, 256, 64, 2048, 2), (1000, 700, 256, 64, 300, 1),
    (100, 100, 256, 64, 2048, 2), (5000, 300, 256, 0, 1024, 4), (10000, 10000, 256, 64, 4096, 2)])
def test_blocks_cover_the_scene_once_and_share_one_tile_row_per_seam(height, width, tile, overlap, block, threads):
    from lale_geo.inference.grid import plan_blocks
    from lale_geo.inference.tile_loop import tiles_meeting

    grid = TileGrid(height, width, tile, overlap)
    blocks = plan_blocks(grid, block, threads)
    covered = np.zeros((height, width), np.uint8)
    computed = 0
    for row in blocks:
        assert len({b.region[0] for b in row}) == 1  # a row of blocks shares its rows
        for b in row:
            y, x, h, w = b.region
            assert 0 < h <= max(block, tile) + tile and 0 < w <= max(block, tile) + tile
            covered[y:y + h, x:x + w] += 1
            tiles = tiles_meeting(grid, b.region)
            computed += len(tiles)
            ey, ex, eh, ew = b.extent  # what the block reads holds every tile it runs, and no more
            assert (tiles[0].y0, tiles[0].x0) == (ey, ex)
            assert max(min(t.y0 + tile, height) for t in tiles) == ey + eh
            assert max(min(t.x0 + tile, width) for t in tiles) == ex + ew
    assert (covered == 1).all()
    assert len(blocks) * len(blocks[0]) >= min(threads, len(grid))
    rows, cols = grid.shape
    seams_y, seams_x = len(blocks) - 1, len(blocks[0]) - 1
    extra = 0 if overlap == 0 else (rows + seams_y) * (cols + seams_x) - rows * cols
    assert computed == len(grid) + extra  # one shared tile row/column per seam, nothing else twice


@pytest.mark.parametrize("height,width,threads,max_pixels,max_columns", [
    (10000, 10000, 2, 32 * 2**20, 12288), (4000, 4000, 2, 32 * 2**20, 12288), (512, 120000, 2, 32 * 2**20, 12288),
    (20000, 20000, 2, 32 * 2**20, 12288), (300, 300, 2, 10**6, 12288), (100, 100, 4, 10**6, 12288),
    (3000, 2000, 3, 10**6, 900)])
def test_bands_are_full_width_few_and_a_multiple_of_the_threads(height, width, threads, max_pixels, max_columns):
    from lale_geo.inference.grid import plan_bands
    from lale_geo.inference.tile_loop import tiles_meeting

    grid = TileGrid(height, width, 256, 64)
    plan = plan_bands(grid, threads, max_pixels, max_columns)
    covered = np.zeros((height, width), np.uint8)
    computed = 0
    for row in plan:
        for b in row:
            y, x, h, w = b.region
            covered[y:y + h, x:x + w] += 1
            tiles = tiles_meeting(grid, b.region)
            computed += len(tiles)
            assert (tiles[0].y0, tiles[0].x0) == b.extent[:2]  # a streamed block starts reading at its first tile
    assert (covered == 1).all()
    blocks = len(plan) * len(plan[0])
    rows, cols = grid.shape
    assert len(plan[0]) == -(-width // max_columns)  # split across columns only for width, never for threads
    assert blocks >= min(threads, rows) and (blocks % threads == 0 or blocks == rows * len(plan[0]))
    # as few bands as the pixel cap and the threads allow: one fewer would break one of them
    fewer = len(plan) - 1
    assert fewer == 0 or -(-height // fewer) * width // len(plan[0]) > max_pixels or fewer * len(plan[0]) < threads \
        or (fewer * len(plan[0])) % threads
    seams_y, seams_x = len(plan) - 1, len(plan[0]) - 1
    assert computed == (rows + seams_y) * (cols + seams_x)  # one shared tile row/column per seam


@pytest.mark.parametrize("height,width,threads", [(10000, 10000, 16), (10000, 10000, 64), (600, 5000, 4)])
def test_too_many_threads_for_bands_of_four_tile_rows_get_two_d_blocks(height, width, threads):
    """16 bands of 3 tile rows would compute 29 % of a 10,000² scene's tiles twice; 4 x 4 blocks, 12 %."""
    import math

    from lale_geo.inference.grid import plan_bands, plan_blocks

    grid = TileGrid(height, width, 256, 64)
    assert plan_bands(grid, threads) == plan_blocks(grid, math.isqrt(32 * 2**20), threads)
