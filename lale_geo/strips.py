"""Read a scene once, top to bottom: strips of full-width rows in the file's own block rows, tiles cut from
memory.

Tiles overlap, so a tile row shares rows with the row above; reading every tile's window from the file
made GDAL decode each block up to three times (or hold a scene-sized block cache to avoid it). Here each
block row of the file is read once (one checked read of whole blocks), kept until no tile needs it, and
tiles are sliced from memory: bytes read equal the file's, and memory is a few strips whatever the
scene's height and GDAL's cache. Validity (nodata, alpha, GDAL mask, NaN) comes with the pixels, so
nothing re-reads it when rows are written.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from rasterio.windows import Window

from .raster import checked_read, has_mask
from .tiling import Tile, pad_to_tile

MAX_READ_ROWS = 1024  # a file with very tall blocks (one strip for the whole image) is read in parts


class RowReader:
    """Rows of an open raster read forward once, in chunks that end on the file's block boundaries.

    ``rows(y0, y1)`` gives the pixels (bands, rows, width, the raster's dtype) and validity (rows, width)
    of rows ``[y0, y1)``; rows above the last ``release(y)`` may be dropped. Asking for rows above a
    released row is a programming error.
    """

    def __init__(self, src, bands: Sequence[int], first_row: int = 0) -> None:
        self.src, self.bands = src, list(bands)
        block_height = src.block_shapes[bands[0] - 1][0] if src.block_shapes else 1
        self.block_height = max(1, min(int(block_height), MAX_READ_ROWS))
        self._chunks: list[tuple[int, np.ndarray, np.ndarray]] = []  # (first row, pixels, validity)
        self._next = first_row  # first row not read yet
        self.bytes_decoded = 0

    def _read_until(self, y1: int) -> None:
        H, W = self.src.height, self.src.width
        while self._next < min(y1, H):
            y0 = self._next
            stop = min(H, (y0 // self.block_height + 1) * self.block_height)  # the end of y0's block row
            pixels, valid = read_region(self.src, self.bands, y0, 0, stop - y0, W)
            self._chunks.append((y0, pixels, valid))
            self.bytes_decoded += pixels.nbytes
            self._next = stop

    def rows(self, y0: int, y1: int) -> tuple[np.ndarray, np.ndarray]:
        y1 = min(y1, self.src.height)
        self._read_until(y1)
        parts = [(p[:, max(y0 - top, 0):y1 - top], v[max(y0 - top, 0):y1 - top])
                 for top, p, v in self._chunks if top < y1 and top + v.shape[0] > y0]
        if not parts or self._chunks[0][0] > y0:
            raise ValueError(f"rows {y0}-{y1} were released or never read")
        if len(parts) == 1:
            return parts[0]
        return np.concatenate([p for p, _ in parts], axis=1), np.concatenate([v for _, v in parts], axis=0)

    def release(self, y: int) -> None:
        """Rows above ``y`` are no longer needed."""
        self._chunks = [c for c in self._chunks if c[0] + c[2].shape[0] > y]


class StripSource:
    """The tile source of a streamed scene: tiles in grid order, cut from the strip of their tile row.

    Pixels keep the raster's dtype, except in a tile with invalid pixels, which are set to ``fill``
    (float32); the part past the scene is reflect-padded. ``validity(y0, rows)`` gives the validity of
    finished scene rows (then released), without a second read.
    """

    def __init__(self, src, bands: Sequence[int], fill: Sequence[float], first_row: int = 0) -> None:
        self.reader = RowReader(src, bands, first_row)
        self.fill = np.asarray(fill, np.float32)[:, None, None]
        self._strip_top: int | None = None
        self._strip: tuple[np.ndarray, np.ndarray] | None = None
        self._valid_rows: list[tuple[int, np.ndarray]] = []  # validity of rows not yet handed out
        self._valid_next = first_row

    def read(self, tile: Tile) -> tuple[np.ndarray, np.ndarray]:
        if tile.y0 != self._strip_top:
            self._strip = self.reader.rows(tile.y0, tile.y0 + tile.size)
            self._strip_top = tile.y0
            self._keep_validity(tile.y0, self._strip[1])
            self.reader.release(tile.y0 + 1)  # the next tile row starts below this one's top
        pixels, valid = self._strip
        data = pixels[:, :, tile.x0:tile.x0 + tile.size]
        ok = valid[:, tile.x0:tile.x0 + tile.size]
        if not ok.all():
            data = np.where(ok[None], data.astype(np.float32), self.fill)
        return pad_to_tile(data, tile.size), pad_to_tile(ok, tile.size)

    def _keep_validity(self, y0: int, valid: np.ndarray) -> None:
        new_from = self._valid_next - y0
        if new_from < valid.shape[0]:
            self._valid_rows.append((self._valid_next, valid[max(new_from, 0):]))
            self._valid_next = y0 + valid.shape[0]

    def validity(self, y0: int, rows: int) -> np.ndarray:
        """(rows, width) validity of scene rows ``[y0, y0 + rows)``, all read with the tiles already."""
        parts = [v[max(y0 - top, 0):y0 + rows - top] for top, v in self._valid_rows
                 if top < y0 + rows and top + v.shape[0] > y0]
        self._valid_rows = [(top, v) for top, v in self._valid_rows if top + v.shape[0] > y0 + rows]
        out = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)
        if out.shape[0] != rows:
            raise ValueError(f"validity of rows {y0}-{y0 + rows} was not read")
        return out


def read_region(src, bands: Sequence[int], y0: int, x0: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixels (raster dtype) and validity of one scene window (clipped to the scene), in one checked read:
    what a Dask or cluster block reads once, with its halo, before its tiles are cut from memory."""
    y1, x1 = min(y0 + height, src.height), min(x0 + width, src.width)
    window = Window(x0, y0, x1 - x0, y1 - y0)
    with checked_read(src, f"row {y0}, col {x0} ({y1 - y0}x{x1 - x0} px)"):
        pixels = src.read(list(bands), window=window)
        # without any mask every pixel is valid: a read-only view of one value, no memory
        valid = src.dataset_mask(window=window) > 0 if has_mask(src) else np.broadcast_to(np.True_, pixels.shape[1:])
    if np.issubdtype(pixels.dtype, np.floating):
        valid = valid & np.isfinite(pixels).all(axis=0)
    return pixels, valid
