"""The tile loop: tiles read from a source, run in static batches with one batch in flight, handed to the
stitcher in grid order; fully masked tiles are never run."""

import numpy as np
import pytest

from lale_geo.errors import LaleGeoError
from lale_geo.inference.engines import TorchEngine
from lale_geo.inference.grid import TileGrid
from lale_geo.inference.tile_loop import ArraySource, predict_array, predict_region, run_tiles, tiles_meeting
from lale_geo.io.scaling import Scale
from tests.helpers import LocalModel

SCALE = Scale.of(0.0, 255.0)


class Recording:
    """A numpy engine (logit c = mean of band c mod 3) that records the batch shapes it is given."""

    num_classes, name = 3, "recording"

    def __init__(self):
        self.batches = []

    def __call__(self, tiles, scale):
        self.batches.append(tiles.shape)
        return np.repeat(tiles.mean(axis=(2, 3), keepdims=True), tiles.shape[2], axis=2).repeat(tiles.shape[3], 3)


def image(h=150, w=170, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (3, h, w)).astype(np.uint8)


def test_every_tile_is_handed_over_once_in_grid_order_and_batches_keep_one_shape():
    grid = TileGrid(150, 170, 64, 16)
    engine, seen = Recording(), []
    computed = run_tiles(ArraySource(image()), grid.tiles(), engine, SCALE, 4, lambda t, logits: seen.append(t))
    assert seen == list(grid.tiles()) and computed == len(seen) == len(grid)
    assert set(engine.batches) == {(4, 3, 64, 64)}  # the last, partial batch is padded to the static shape
    assert len(engine.batches) == -(-computed // 4)


def test_fully_masked_tiles_are_not_run_and_get_no_logits():
    valid = np.ones((150, 170), bool)
    valid[:80, :80] = False  # the first tile (0..64 x 0..64) is wholly invalid
    grid = TileGrid(150, 170, 64, 16)
    got = {}
    engine = Recording()
    computed = run_tiles(ArraySource(image(), valid, [0, 0, 0]), grid.tiles(), engine, SCALE, 4,
                         lambda t, logits: got.__setitem__((t.y0, t.x0), logits))
    assert got[(0, 0)] is None and computed == len(got) - 1
    assert all(v is not None for k, v in got.items() if k != (0, 0))


def test_a_per_pixel_model_gives_the_untiled_logits_and_a_region_equals_the_whole_scene_there():
    engine = TorchEngine(LocalModel(num_classes=3, radius=0), (0.5,) * 3, (0.25,) * 3, device="cpu")
    pixels = image()
    whole = predict_array(engine, pixels, SCALE, 64, 16, batch_size=3)
    np.testing.assert_allclose(whole, engine(pixels[None].astype(np.float32), SCALE)[0], atol=1e-4)
    grid = TileGrid(150, 170, 64, 16)
    region = predict_region(ArraySource(pixels), grid, (40, 50, 70, 90), engine, SCALE, 3)
    np.testing.assert_allclose(region, whole[:, 40:110, 50:140], atol=1e-5)


def test_tiles_meeting_a_region_are_exactly_those_whose_window_overlaps_it():
    grid = TileGrid(300, 300, 64, 16)
    region = (100, 40, 30, 10)
    meeting = tiles_meeting(grid, region)
    expected = [t for t in grid.tiles() if t.y0 < 130 and t.y0 + 64 > 100 and t.x0 < 50 and t.x0 + 64 > 40]
    assert meeting == expected and meeting


def test_an_engine_failure_names_the_tiles_of_the_batch():
    def broken(tiles, scale):
        raise RuntimeError("out of memory")

    broken.num_classes, broken.name = 3, "broken"
    grid = TileGrid(100, 100, 64, 16)
    with pytest.raises(LaleGeoError, match=r"prediction failed for tiles at \(row 0, col 0, 64 px\).*out of memory"):
        run_tiles(ArraySource(image(100, 100)), grid.tiles(), broken, SCALE, 2, lambda t, logits: None)


def test_a_failed_read_waits_for_the_batch_still_running_before_the_error_leaves():
    class Background(Recording):
        """An engine that runs in the background; it records whether each started batch was waited for."""

        def __init__(self):
            super().__init__()
            self.pending = 0

        def start(self, tiles, scale):
            self.pending += 1
            logits = self(tiles, scale)

            def wait():
                self.pending -= 1
                return logits
            return wait

    class FailsAtTile(ArraySource):
        def read(self, tile):
            if (tile.y0, tile.x0) == (48, 96):  # in the second row, after the first batch has started
                raise OSError("read failed")
            return super().read(tile)

    engine = Background()
    with pytest.raises(OSError, match="read failed"):
        run_tiles(FailsAtTile(image()), TileGrid(150, 170, 64, 16).tiles(), engine, SCALE, 2, lambda t, x: None)
    assert engine.pending == 0
