"""Read a scene once, top to bottom: strips of rows in the file's own block rows, tiles cut from memory.

Tiles overlap, so a tile row shares rows with the row above; reading every tile's window from the file
made GDAL decode each block up to three times (or hold a scene-sized block cache to avoid it). Here each
block row of the file is read once (one checked read of whole blocks), kept until no tile needs it, and
tiles are sliced from memory: bytes read equal the file's, and memory is a few strips whatever the
scene's height and GDAL's cache. Validity (nodata, alpha, GDAL mask, NaN) comes with the pixels, so
nothing re-reads it when rows are written.

A scene too wide for one strip is read in column blocks (:class:`ColumnBlock`), one after the other, each
top to bottom; the columns two neighbours share are handed over through a temporary file
(:class:`Handover`), so even then no block of the file is decoded twice.
"""

from __future__ import annotations

import math
import tempfile
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from rasterio.windows import Window

from ..io.raster import checked_read, has_mask, pad_to_tile
from .grid import MAX_COLUMNS, Tile, TileGrid, axis_groups

MAX_READ_ROWS = 1024  # a file with very tall blocks (one strip for the whole image) is read in parts


@dataclass(frozen=True)
class ColumnBlock:
    """Scene columns that one pass over the rows covers.

    ``x0``-``x1`` is its share of the map; its tiles (those meeting that share) read ``read_x0``-``read_x1``;
    it reads ``file_x0``-``file_x1`` from the file (whole file blocks: GDAL decodes them whole anyway), and
    the columns left of ``file_x0`` from the block before, which read them already."""

    x0: int
    x1: int
    read_x0: int
    read_x1: int
    file_x0: int
    file_x1: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0


def column_blocks(src, grid: TileGrid, bands: Sequence[int], max_columns: int | None = None) -> list[ColumnBlock]:
    """The column blocks of a scene: one for the whole width, unless the file is tiled and wider than
    ``max_columns`` (default :data:`MAX_COLUMNS`; a striped file's blocks span the whole width: splitting
    it would decode every block once per column block)."""
    max_columns = max_columns or MAX_COLUMNS
    block_width = src.block_shapes[bands[0] - 1][1] if src.block_shapes else grid.width
    count = math.ceil(grid.width / max_columns)
    # each block at least two file blocks and two tiles wide, so a handover only spans one seam
    count = min(count, grid.width // (2 * max(block_width, grid.tile_size)))
    if block_width >= grid.width or count <= 1:
        return [whole_width(grid.width)]
    blocks, file_x0 = [], 0
    for x0, x1, read_x0, read_x1 in axis_groups(grid.col_origins, grid.width, grid.tile_size, count):
        file_x1 = min(grid.width, -(-read_x1 // block_width) * block_width)  # the next reads the file from here
        blocks.append(ColumnBlock(x0, x1, read_x0, read_x1, file_x0, file_x1))
        file_x0 = file_x1
    return blocks


def whole_width(width: int) -> ColumnBlock:
    """The one column block of a scene read in full rows."""
    return ColumnBlock(0, width, 0, width, 0, width)


class Handover:
    """Pixels a column block read that the next one needs (columns ``x0``-``x1``), kept in a temporary file in
    read order: the next block reads them from here instead of decoding those file blocks again."""

    def __init__(self, x0: int, x1: int) -> None:
        self.x0, self.x1 = x0, x1
        self._file = tempfile.TemporaryFile(prefix="lale-geo-handover-")
        self._chunks: deque[tuple[int, tuple, np.dtype, bool]] = deque()  # (first row, shape, dtype, has validity)
        self._reading = False

    def put(self, y0: int, pixels: np.ndarray, valid: np.ndarray) -> None:
        masked = valid.strides != (0, 0)  # an all-valid view (no mask) is not stored
        self._file.write(np.ascontiguousarray(pixels).tobytes())
        if masked:
            self._file.write(np.ascontiguousarray(valid).tobytes())
        self._chunks.append((y0, pixels.shape, pixels.dtype, masked))

    def take(self, y0: int) -> tuple[np.ndarray, np.ndarray]:
        """The pixels and validity put for the chunk starting at row ``y0`` (chunks are taken in order)."""
        if not self._reading:
            self._file.seek(0)
            self._reading = True
        first, shape, dtype, masked = self._chunks.popleft()
        if first != y0:
            raise ValueError(f"handover holds rows from {first}, asked for {y0}")
        pixels = np.frombuffer(self._file.read(math.prod(shape) * dtype.itemsize), dtype).reshape(shape)
        if masked:
            valid = np.frombuffer(self._file.read(math.prod(shape[1:])), bool).reshape(shape[1:])
        else:
            valid = np.broadcast_to(np.True_, shape[1:])
        return pixels, valid

    def close(self) -> None:
        self._file.close()


class RowReader:
    """Rows of an open raster read forward once, in chunks that end on the file's block boundaries.

    ``rows(y0, y1)`` gives the pixels (bands, rows, columns, the raster's dtype) and validity (rows, columns)
    of rows ``[y0, y1)``; rows above the last ``release(y)`` may be dropped. Asking for rows above a
    released row is a programming error. With a column block, the columns are ``read_x0``-``read_x1``:
    those left of ``file_x0`` come from ``handover_in`` (else from the file), and the columns the next block
    needs go to ``handover_out``.
    """

    def __init__(self, src, bands: Sequence[int], first_row: int = 0, columns: ColumnBlock | None = None,
                 handover_in: Handover | None = None, handover_out: Handover | None = None) -> None:
        self.src, self.bands = src, list(bands)
        block_height = src.block_shapes[bands[0] - 1][0] if src.block_shapes else 1
        self.block_height = max(1, min(int(block_height), MAX_READ_ROWS))
        columns = columns or whole_width(src.width)
        self.x0, self.x1 = columns.read_x0, columns.file_x1  # the columns rows() gives
        if handover_in is not None and (handover_in.x0, handover_in.x1) != (columns.read_x0, columns.file_x0):
            raise ValueError("the handover does not hold this block's left columns")
        self._file_x0 = columns.file_x0 if handover_in is not None else columns.read_x0
        self.handover_in, self.handover_out = handover_in, handover_out
        self._chunks: list[tuple[int, np.ndarray, np.ndarray]] = []  # (first row, pixels, validity)
        self._next = first_row  # first row not read yet
        self.bytes_decoded = 0

    def _read_until(self, y1: int) -> None:
        H = self.src.height
        while self._next < min(y1, H):
            y0 = self._next
            stop = min(H, (y0 // self.block_height + 1) * self.block_height)  # the end of y0's block row
            pixels, valid = read_region(self.src, self.bands, y0, self._file_x0, stop - y0, self.x1 - self._file_x0)
            self.bytes_decoded += pixels.nbytes
            if self.handover_in is not None:
                left_pixels, left_valid = self.handover_in.take(y0)
                pixels = np.concatenate([left_pixels, pixels], axis=2)
                valid = _join_validity(left_valid, valid)
            if self.handover_out is not None:
                cut = slice(self.handover_out.x0 - self.x0, self.handover_out.x1 - self.x0)
                self.handover_out.put(y0, pixels[:, :, cut], valid[:, cut])
            self._chunks.append((y0, pixels, valid))
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


def _join_validity(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    if left.strides == (0, 0) and right.strides == (0, 0):  # both all valid: still no array
        return np.broadcast_to(np.True_, (left.shape[0], left.shape[1] + right.shape[1]))
    return np.concatenate([left, right], axis=1)


class StripSource:
    """The tile source of a streamed scene (or of one column block of it): tiles in grid order, cut from the
    strip of their tile row.

    Pixels keep the raster's dtype, except in a tile with invalid pixels, which are set to ``fill``
    (float32); the part past the scene is reflect-padded. ``validity(y0, rows)`` gives the validity of
    finished scene rows (then released), in the block's columns, without a second read.
    """

    def __init__(self, src, bands: Sequence[int], fill: Sequence[float], first_row: int = 0,
                 columns: ColumnBlock | None = None, handover_in: Handover | None = None,
                 handover_out: Handover | None = None) -> None:
        self.reader = RowReader(src, bands, first_row, columns, handover_in, handover_out)
        self.columns = columns or whole_width(src.width)
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
        assert self._strip is not None  # read above for the first tile (_strip_top starts as None)
        pixels, valid = self._strip
        x = tile.x0 - self.reader.x0
        data = pixels[:, :, x:x + tile.size]
        ok = valid[:, x:x + tile.size]
        if not ok.all():
            data = np.where(ok[None], data.astype(np.float32), self.fill)
        return pad_to_tile(data, tile.size), pad_to_tile(ok, tile.size)

    def _keep_validity(self, y0: int, valid: np.ndarray) -> None:
        new_from = self._valid_next - y0
        if new_from < valid.shape[0]:
            share = valid[:, self.columns.x0 - self.reader.x0:self.columns.x1 - self.reader.x0]
            self._valid_rows.append((self._valid_next, share[max(new_from, 0):]))
            self._valid_next = y0 + valid.shape[0]

    def validity(self, y0: int, rows: int) -> np.ndarray:
        """(rows, block width) validity of scene rows ``[y0, y0 + rows)``, all read with the tiles already."""
        parts = [v[max(y0 - top, 0):y0 + rows - top] for top, v in self._valid_rows
                 if top < y0 + rows and top + v.shape[0] > y0]
        self._valid_rows = [(top, v) for top, v in self._valid_rows if top + v.shape[0] > y0 + rows]
        out = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)
        if out.shape[0] != rows:
            raise ValueError(f"validity of rows {y0}-{y0 + rows} was not read")
        return out


def read_region(src, bands: Sequence[int], y0: int, x0: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixels (raster dtype) and validity of one scene window (clipped to the scene), in one checked read:
    a chunk of file block rows that :class:`RowReader` holds until no tile needs it."""
    y1, x1 = min(y0 + height, src.height), min(x0 + width, src.width)
    window = Window(x0, y0, x1 - x0, y1 - y0)
    with checked_read(src, window):
        pixels = src.read(list(bands), window=window)
        # without any mask every pixel is valid: a read-only view of one value, no memory
        valid = src.dataset_mask(window=window) > 0 if has_mask(src) else np.broadcast_to(np.True_, pixels.shape[1:])
    if np.issubdtype(pixels.dtype, np.floating):
        valid = valid & np.isfinite(pixels).all(axis=0)
    return pixels, valid
