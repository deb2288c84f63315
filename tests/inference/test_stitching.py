import numpy as np
import pytest

from lale_geo.inference.grid import TileGrid
from lale_geo.inference.stitching import RowStitcher, labels_and_confidence, softmax
from lale_geo.io.raster import read_padded


def stitch(image, tile, overlap, model):
    grid = TileGrid(image.shape[1], image.shape[2], tile, overlap)
    out = np.full((model(read_padded(image, next(grid.tiles()))).shape[0],) + image.shape[1:], np.nan,
                  np.float32)
    stitcher = RowStitcher(grid, out.shape[0])
    peak = 0
    for t in grid.tiles():
        for band in stitcher.add(t, model(read_padded(image, t))):
            out[:, band.y0:band.y0 + band.logits.shape[1]] = band.logits
        peak = max(peak, stitcher._acc.nbytes)
    return out, peak


@pytest.mark.parametrize("shape,tile,overlap", [((3, 517, 389), 128, 32), ((3, 60, 45), 128, 32),
                                                ((3, 300, 300), 100, 0), ((3, 1000, 64), 64, 48)])
def test_identity_model_gives_back_its_input(shape, tile, overlap):
    image = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    out, _ = stitch(image, tile, overlap, lambda t: t)
    np.testing.assert_allclose(out, image, atol=1e-5)


def test_constant_model_gives_a_constant_map():
    image = np.zeros((3, 333, 222), np.float32)
    logits = np.array([0.1, 2.0, -1.0], np.float32)
    out, _ = stitch(image, 96, 40, lambda t: np.broadcast_to(logits[:, None, None], t.shape).copy())
    np.testing.assert_allclose(out, np.broadcast_to(logits[:, None, None], out.shape), atol=1e-5)


def peak_while_streaming(height: int, width: int = 150, tile: int = 64, overlap: int = 16) -> int:
    """Peak bytes allocated (tracemalloc) while a height x width scene is stitched from constant tiles
    and its bands handed out (the scene itself is never allocated)."""
    import tracemalloc

    grid = TileGrid(height, width, tile, overlap)
    logits = np.ones((2, tile, tile), np.float32)
    tracemalloc.start()
    try:
        stitcher = RowStitcher(grid, 2)
        rows = 0
        for t in grid.tiles():
            for band in stitcher.add(t, logits):
                rows += band.logits.shape[1]
        assert rows == height
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_does_not_grow_with_scene_height():
    short, tall = peak_while_streaming(200), peak_while_streaming(20_000)
    scene_bytes = 2 * 20_000 * 150 * 4
    assert tall < 1.2 * short + 50_000 and tall < scene_bytes / 20


def test_out_of_order_tiles_are_refused():
    grid = TileGrid(300, 300, 100, 20)
    stitcher = RowStitcher(grid, 2)
    last = list(grid.tiles())[-1]
    with pytest.raises(ValueError, match="grid order"):
        list(stitcher.add(last, np.zeros((2, 100, 100), np.float32)))


def test_labels_and_confidence():
    logits = np.array([[[0.0, 5.0]], [[1.0, 0.0]], [[0.5, 0.0]]], np.float32)  # (3, 1, 2)
    labels, conf = labels_and_confidence(logits)
    np.testing.assert_array_equal(labels, [[1, 0]])
    np.testing.assert_allclose(conf, softmax(logits).max(0), rtol=1e-6)


def test_column_blocks_side_by_side_equal_the_whole_width_bit_for_bit():
    rng = np.random.default_rng(4)
    grid = TileGrid(250, 700, 64, 24)
    logits = {(t.row, t.col): rng.normal(size=(3, 64, 64)).astype(np.float32) for t in grid.tiles()}

    def stitched(columns):
        stitcher = RowStitcher(grid, 3, columns=columns)
        x0, x1 = columns or (0, grid.width)
        out = np.full((3, grid.height, x1 - x0), np.nan, np.float32)
        for t in grid.tiles():
            if t.col in stitcher.tile_cols:
                for band in stitcher.add(t, logits[t.row, t.col]):
                    out[:, band.y0:band.y0 + band.logits.shape[1]] = band.logits
        return out

    whole = stitched(None)
    joined = np.concatenate([stitched((0, 230)), stitched((230, 501)), stitched((501, 700))], axis=2)
    assert np.array_equal(whole, joined)  # equal, not close: the same sums in the same order
    with pytest.raises(ValueError, match="grid order"):
        list(RowStitcher(grid, 3, columns=(230, 501)).add(next(grid.tiles()), logits[0, 0]))
