import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lale_geo.tiling import Tile, TileGrid, axis_origins, read_padded


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
