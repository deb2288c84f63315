"""The one tile loop: read tiles from a source, batch them, run an engine, hand logits to a stitcher.

Every path goes through :func:`run_tiles`: ``predict`` and cluster blocks (an open raster, streamed by
rows), ``segment``'s Dask blocks (an array cut with its halo, stitched over one region) and evaluation
(an in-memory image). Batching, skipping fully masked tiles, padding the last batch to a static shape and
the error that names the failing windows are written here once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

import numpy as np

from ..errors import LaleGeoError
from ..io.raster import gdal_messages, pad_to_tile, read_window
from ..io.scaling import Scale
from .engines import Engine, start_batch
from .grid import Tile, TileGrid, first_row_touching
from .stitching import Band, RegionStitcher, RowStitcher


class TileSource(Protocol):
    """Where tiles come from: ``read(tile)`` gives (bands, size, size) raw pixels (any real dtype), masked
    pixels already filled and the part past the scene reflect-padded, and the (size, size) validity."""

    def read(self, tile: Tile) -> tuple[np.ndarray, np.ndarray]: ...


class RasterSource:
    """Tiles read window by window from an open raster (only the tiles' windows are ever read)."""

    def __init__(self, scene, bands: Sequence[int], fill: Sequence[float]) -> None:
        self.scene, self.bands, self.fill = scene, list(bands), list(fill)

    def read(self, tile: Tile) -> tuple[np.ndarray, np.ndarray]:
        return read_window(self.scene, self.bands, tile.y0, tile.x0, tile.size, self.fill)


class ArraySource:
    """Tiles cut from an in-memory (bands, h, w) array holding the scene from ``origin`` = (y, x) on: a
    whole image, or a Dask block with its halo. ``valid`` (h, w) marks valid pixels (default: all);
    invalid ones are set to ``fill`` once, here."""

    def __init__(self, pixels: np.ndarray, valid: np.ndarray | None = None, fill: Sequence[float] | None = None,
                 origin: tuple[int, int] = (0, 0)) -> None:
        self.valid = np.ones(pixels.shape[1:], bool) if valid is None else valid
        if valid is not None and not valid.all():
            pixels = np.where(valid[None], pixels, np.asarray(fill, np.float32)[:, None, None])
        self.pixels, self.origin = pixels, origin

    def read(self, tile: Tile) -> tuple[np.ndarray, np.ndarray]:
        oy, ox = self.origin
        ys, xs = slice(tile.y0 - oy, tile.y0 - oy + tile.size), slice(tile.x0 - ox, tile.x0 - ox + tile.size)
        # raw values as they are (the engine's normalisation converts them once, as for file reads)
        return pad_to_tile(self.pixels[:, ys, xs], tile.size), pad_to_tile(self.valid[ys, xs], tile.size)


def _padded(tiles: Sequence[np.ndarray], batch_size: int, buffer: np.ndarray | None = None) -> np.ndarray:
    """The tiles stacked and padded (repeating the last) to ``batch_size``: engines see one static shape.
    Stacked into ``buffer`` when it fits (engines copy their input when they start a batch)."""
    shape = (batch_size, *tiles[0].shape)
    dtype = np.result_type(*tiles)
    stack = buffer if buffer is not None and buffer.shape == shape and buffer.dtype == dtype else np.empty(shape, dtype)
    np.stack(tiles, out=stack[:len(tiles)])
    stack[len(tiles):] = tiles[-1]
    return stack


def run_tiles(source: TileSource, tiles: Iterable[Tile], engine: Engine, scale: Scale, batch_size: int,
              add: Callable[[Tile, np.ndarray | None], None],
              progress: Callable[[int], None] | None = None) -> int:
    """Read every tile from ``source``, run ``engine`` on batches of ``batch_size`` and call ``add(tile,
    logits)`` in the order of ``tiles`` (``logits`` None for a fully masked tile, which is not run).
    Returns the number of tiles computed.

    One batch is in flight while the next is read and the previous one stitched, so that with an
    engine that runs in the background no core waits on the other's work."""
    queue: list[tuple[Tile, np.ndarray | None]] = []
    in_flight: list = []  # (tiles of the batch in order, wait for its logits) of the batch being computed
    computed = 0
    stack: np.ndarray | None = None  # the batch, reused from batch to batch

    def failed(batch, e: Exception) -> LaleGeoError:
        windows = ", ".join(f"(row {t.y0}, col {t.x0}, {t.size} px)" for t, d in batch if d is not None)
        return LaleGeoError(f"prediction failed for tiles at {windows}: {e}")

    def finish() -> None:
        batch, wait = in_flight.pop()
        try:
            logits = iter(wait() if wait else ())
        except Exception as e:
            raise failed(batch, e) from e
        for tile, data in batch:
            add(tile, next(logits) if data is not None else None)
        if progress:
            progress(len(batch))

    def flush() -> None:
        nonlocal computed, stack
        batch = list(queue)
        queue.clear()
        todo = [d for _, d in batch if d is not None]
        try:
            wait = None
            if todo:
                stack = _padded(todo, batch_size, stack)
                wait = start_batch(engine, stack, scale)
        except Exception as e:
            raise failed(batch, e) from e
        computed += len(todo)
        if in_flight:
            finish()  # the batch before: its tiles go to the stitcher before this batch's
        in_flight.append((batch, wait))

    # GDAL's message capture is installed once for the loop (installed per read it cost about 1 ms)
    with gdal_messages():
        try:
            for tile in tiles:
                data, valid = source.read(tile)
                queue.append((tile, data if valid.any() else None))
                if sum(d is not None for _, d in queue) == batch_size:
                    flush()
            if queue:
                flush()
            if in_flight:
                finish()
        except BaseException:
            # a batch still running would meet the engine's next run (a kept engine serves the next scene)
            for _, wait in in_flight:
                if wait is not None:
                    with contextlib.suppress(Exception):
                        wait()
            raise
    return computed


def stream_scene(source: TileSource, grid: TileGrid, engine: Engine, scale: Scale, batch_size: int,
                 emit: Callable[[Band], None], progress: Callable[[int], None] | None = None,
                 resume_at: int = 0, columns: tuple[int, int] | None = None, until: int | None = None) -> int:
    """Blend the whole grid row by row, handing each finished row band to ``emit`` (memory bounded by
    the scene's width). With ``resume_at`` > 0 (scene rows already written, or the top of a cluster's
    band of rows) start at the first tile row that reaches below them; with ``until``, stop after the
    tile rows that start above that scene row (the last band emitted then holds every row above it).
    ``columns`` = (x0, x1): only those scene columns (one column block; the tiles that meet them).
    ``progress`` hears of the tiles computed only (a resumed run reports the rows it skips itself).
    Returns the number of tiles computed."""
    start_row = first_row_touching(grid, resume_at) if resume_at else 0
    stop_row = len(grid.row_origins) if until is None else sum(y < until for y in grid.row_origins)
    stitcher = RowStitcher(grid, engine.num_classes, start_row=start_row, columns=columns)

    def add(tile: Tile, logits: np.ndarray | None) -> None:
        for band in stitcher.add(tile, logits):
            emit(band)

    tiles = (Tile(r, c, grid.row_origins[r], grid.col_origins[c], grid.tile_size)
             for r in range(start_row, stop_row) for c in stitcher.tile_cols)
    return run_tiles(source, tiles, engine, scale, batch_size, add, progress)


def tiles_meeting(grid: TileGrid, region: tuple[int, int, int, int]) -> list[Tile]:
    """The grid tiles (in grid order) whose window meets the region (y0, x0, height, width)."""
    ry, rx, rh, rw = region
    rows = [r for r, y in enumerate(grid.row_origins) if y < ry + rh and y + grid.tile_size > ry]
    cols = [c for c, x in enumerate(grid.col_origins) if x < rx + rw and x + grid.tile_size > rx]
    return [Tile(r, c, grid.row_origins[r], grid.col_origins[c], grid.tile_size) for r in rows for c in cols]


def predict_region(source: TileSource, grid: TileGrid, region: tuple[int, int, int, int], engine: Engine,
                   scale: Scale, batch_size: int) -> np.ndarray:
    """Blended logits (classes, height, width) of the scene region (y0, x0, height, width): every grid
    tile that meets it is run and weighted as in a whole-scene run, so regions computed anywhere
    (``segment``'s Dask blocks) equal the streamed map."""
    stitcher = RegionStitcher(grid, engine.num_classes, region)
    run_tiles(source, tiles_meeting(grid, region), engine, scale, batch_size, stitcher.add)
    return stitcher.logits


def predict_array(engine: Engine, image: np.ndarray, scale: Scale, tile_size: int, overlap: int,
                  batch_size: int = 8) -> np.ndarray:
    """Blended logits (classes, H, W) of an in-memory (bands, H, W) image, tiled like a scene."""
    _, H, W = image.shape
    grid = TileGrid(H, W, tile_size, overlap)
    return predict_region(ArraySource(image), grid, (0, 0, H, W), engine, scale, batch_size)
