"""Tile grids and blending weights (pure numpy: no torch, no I/O).

A scene of ``height`` x ``width`` is cut into square tiles of ``tile_size`` that overlap by at least
``overlap`` pixels. Each tile's blending weight is separable, ``w(y, x) = a_row(y) * b_col(x)``, and each
1-D factor is normalised over the tiles of its axis, so the weights of all tiles sum to exactly one at
every scene pixel (no pixel with zero weight, scene edges included). Along an overlap the weight ramps
smoothly (raised cosine); toward the scene border it stays flat.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

MAX_COLUMNS = 12288  # a wider scene is processed in column blocks: memory stops growing with width


def axis_origins(length: int, tile_size: int, overlap: int) -> list[int]:
    """Tile start offsets along one axis: stride ``tile_size - overlap``, the last tile flush with the end.

    A scene shorter than one tile gets a single tile at 0 (the reader pads it).
    """
    if tile_size <= 0 or not 0 <= overlap < tile_size:
        raise ValueError(f"need 0 <= overlap < tile_size, got tile_size={tile_size}, overlap={overlap}")
    if length <= tile_size:
        return [0]
    stride = tile_size - overlap
    origins = list(range(0, length - tile_size, stride))
    origins.append(length - tile_size)
    return origins


def _ramp(overlap: int) -> np.ndarray:
    """Strictly positive raised-cosine ramp of ``overlap`` samples rising toward 1."""
    i = (np.arange(overlap) + 0.5) / overlap
    return np.sin(0.5 * np.pi * i) ** 2


def axis_weights(length: int, tile_size: int, overlap: int) -> list[np.ndarray]:
    """Normalised 1-D blending weights (``tile_size`` samples) of each tile along one axis.

    Samples beyond the scene end (tiles of short scenes) get weight 0.
    """
    origins = axis_origins(length, tile_size, overlap)
    raw = []
    for i in range(len(origins)):
        w = np.ones(tile_size)
        if overlap and i > 0:  # an earlier tile overlaps this one's start
            w[:overlap] = _ramp(overlap)
        if overlap and i < len(origins) - 1:  # a later tile overlaps this one's end
            w[tile_size - overlap:] = _ramp(overlap)[::-1]
        raw.append(w)
    total = np.zeros(max(length, tile_size))
    for origin, w in zip(origins, raw):
        total[origin:origin + tile_size] += w
    normalised = []
    for origin, w in zip(origins, raw):
        n = w / total[origin:origin + tile_size]
        n[max(length - origin, 0):] = 0.0
        normalised.append(n.astype(np.float32))
    return normalised


def _kinds(weights: list[np.ndarray]) -> list[int]:
    """For each tile of an axis, the index of the first tile with the same 1-D weights."""
    first: dict[bytes, int] = {}
    return [first.setdefault(w.tobytes(), i) for i, w in enumerate(weights)]


@dataclass(frozen=True)
class Tile:
    """One tile of a grid: its row/column index and the scene window it reads (may run past the edge)."""

    row: int
    col: int
    y0: int
    x0: int
    size: int

    @property
    def window(self) -> tuple[slice, slice]:
        """Scene slices of the tile; they may run past the scene end (numpy clips them)."""
        return slice(self.y0, self.y0 + self.size), slice(self.x0, self.x0 + self.size)


@dataclass(frozen=True)
class TileGrid:
    """Overlapping tiles over a ``height`` x ``width`` scene, in row-major order."""

    height: int
    width: int
    tile_size: int
    overlap: int
    row_origins: tuple[int, ...] = field(init=False)
    col_origins: tuple[int, ...] = field(init=False)
    # Derived in __post_init__, left out of init, repr, comparison and hash: 1-D weights per tile row and
    # column, the index of each one's first equal, and the (row kind, column kind) -> 2-D weights cache.
    _row_w: list[np.ndarray] = field(init=False, repr=False, compare=False)
    _col_w: list[np.ndarray] = field(init=False, repr=False, compare=False)
    _row_kind: list[int] = field(init=False, repr=False, compare=False)
    _col_kind: list[int] = field(init=False, repr=False, compare=False)
    _outer: dict[tuple[int, int], np.ndarray] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.height <= 0 or self.width <= 0:
            raise ValueError(f"empty scene: {self.height} x {self.width}")
        object.__setattr__(self, "row_origins", tuple(axis_origins(self.height, self.tile_size, self.overlap)))
        object.__setattr__(self, "col_origins", tuple(axis_origins(self.width, self.tile_size, self.overlap)))
        object.__setattr__(self, "_row_w", axis_weights(self.height, self.tile_size, self.overlap))
        object.__setattr__(self, "_col_w", axis_weights(self.width, self.tile_size, self.overlap))
        object.__setattr__(self, "_row_kind", _kinds(self._row_w))
        object.__setattr__(self, "_col_kind", _kinds(self._col_w))
        object.__setattr__(self, "_outer", {})

    def __len__(self) -> int:
        return len(self.row_origins) * len(self.col_origins)

    @property
    def shape(self) -> tuple[int, int]:
        """Tiles per column and per row."""
        return len(self.row_origins), len(self.col_origins)

    def tiles(self) -> Iterator[Tile]:
        for r, y0 in enumerate(self.row_origins):
            for c, x0 in enumerate(self.col_origins):
                yield Tile(r, c, y0, x0, self.tile_size)

    def weights(self, tile: Tile) -> np.ndarray:
        """(tile_size, tile_size) float32 blending weights of ``tile``; over all tiles they sum to 1.

        Read-only and shared: most tiles have the same weights (only those by the scene's border differ), so
        each distinct pair of 1-D factors is multiplied out once."""
        key = (self._row_kind[tile.row], self._col_kind[tile.col])
        weights = self._outer.get(key)
        if weights is None:
            weights = np.outer(self._row_w[tile.row], self._col_w[tile.col])
            weights.flags.writeable = False
            self._outer[key] = weights
        return weights

    def cols_meeting(self, x0: int, x1: int) -> range:
        """Indexes of the tile columns whose windows meet scene columns ``[x0, x1)``."""
        cols = [c for c, x in enumerate(self.col_origins) if x < x1 and x + self.tile_size > x0]
        return range(cols[0], cols[-1] + 1)

    def row_band(self, row: int) -> tuple[int, int]:
        """Scene rows ``[start, stop)`` that are final once tile row ``row`` and all before it are added."""
        start = 0 if row == 0 else self.row_origins[row]
        stop = self.row_origins[row + 1] if row + 1 < len(self.row_origins) else self.height
        return start, stop


def first_row_touching(grid: TileGrid, y: int) -> int:
    """Index of the first tile row whose tiles reach scene row ``y`` or below."""
    return next(r for r, origin in enumerate(grid.row_origins) if origin + grid.tile_size > y)


@dataclass(frozen=True)
class Block:
    """A region of the scene computed on its own (a Dask chunk, a cluster task), aligned to the tile grid.

    ``region`` = (y0, x0, height, width) is the block's share of the map; ``extent`` = (y0, x0, height,
    width) is what its tiles read: the region plus the halo its blend needs.
    """

    region: tuple[int, int, int, int]
    extent: tuple[int, int, int, int]


def axis_groups(origins: tuple[int, ...], length: int, tile_size: int, groups: int) -> list[tuple[int, int, int, int]]:
    """Split the tiles of one axis into ``groups`` runs; (start, stop, read_start, read_stop) per run.

    A seam lies where a tile ends: the tile before it no longer reaches across, so a block reads only
    the ``overlap`` of the tile that starts before its seam, and exactly one tile per seam is computed
    by both blocks that share it (the least any blend of overlapping tiles allows)."""
    n = len(origins)
    groups = max(1, min(groups, n))
    bounds = [round(i * n / groups) for i in range(groups + 1)]
    runs = []
    for first, stop in zip(bounds, bounds[1:]):
        start = 0 if first == 0 else origins[first - 1] + tile_size
        end = length if stop == n else origins[stop - 1] + tile_size
        last = max(i for i in range(first, n) if origins[i] < end)  # the tile across the seam below, if any
        runs.append((start, end, origins[first], min(origins[last] + tile_size, length)))
    return runs


def _whole_rounds(by: int, bx: int, parallelism: int, rows_n: int, cols_n: int) -> tuple[int, int]:
    """The fewest blocks, at least ``by`` x ``bx``, whose count is a multiple of ``parallelism`` (so that
    the last round of blocks keeps every thread busy), splitting at most one more time per axis and
    thread; unchanged when no such split fits the grid's tiles."""
    if parallelism <= 1 or (by * bx) % parallelism == 0:
        return by, bx
    options = [(y * x, abs(rows_n / y - cols_n / x), y, x)
               for y in range(by, min(by + parallelism, rows_n) + 1)
               for x in range(bx, min(bx + parallelism, cols_n) + 1) if (y * x) % parallelism == 0]
    return min(options)[2:] if options else (by, bx)


def plan_blocks(grid: TileGrid, block_size: int = 2048, parallelism: int = 1) -> list[list[Block]]:
    """Rows of blocks covering the scene, aligned to ``grid`` (see :class:`Block`), each about
    ``block_size`` px or less on a side, at least one per thread (``parallelism`` in all) when the
    scene allows, and a multiple of the threads when the grid allows, so that no round of blocks leaves
    a worker idle (9 blocks on 2 threads: the last round runs on one). No more than that: each seam
    between blocks costs one row (or column) of tiles computed twice, and each block pads its last batch."""
    rows_n, cols_n = grid.shape
    by = min(-(-grid.height // block_size), rows_n)
    bx = min(-(-grid.width // block_size), cols_n)
    while by * bx < parallelism and (by < rows_n or bx < cols_n):
        # split the axis whose blocks hold more tiles (fewer duplicated seams per tile)
        if (rows_n / by >= cols_n / bx and by < rows_n) or bx >= cols_n:
            by += 1
        else:
            bx += 1
    return _grid_blocks(grid, *_whole_rounds(by, bx, parallelism, rows_n, cols_n))


def _grid_blocks(grid: TileGrid, by: int, bx: int) -> list[list[Block]]:
    """``by`` x ``bx`` rows of blocks aligned to ``grid``: whole tile rows and columns per block."""
    ys = axis_groups(grid.row_origins, grid.height, grid.tile_size, by)
    xs = axis_groups(grid.col_origins, grid.width, grid.tile_size, bx)
    return [[Block((y0, x0, y1 - y0, x1 - x0), (ry0, rx0, ry1 - ry0, rx1 - rx0)) for x0, x1, rx0, rx1 in xs]
            for y0, y1, ry0, ry1 in ys]


MIN_BAND_ROWS = 4  # tile rows per band at least: thinner bands compute too many tiles twice


def plan_bands(grid: TileGrid, parallelism: int = 1, max_pixels: int = 32 * 2**20,
               max_columns: int | None = None) -> list[list[Block]]:
    """Rows of blocks for workers that stream their block row by row (a cluster run): full-width bands of
    rows, split into column blocks only where a row would be wider than ``max_columns`` (the row
    stitcher holds ``classes x tile_size x width`` floats). A streamed block's memory does not grow with
    its height, so blocks are as few as ``max_pixels`` (about what a block sends back) and the
    ``parallelism`` threads allow: each seam costs one tile row computed twice.

    With more threads than bands of :data:`MIN_BAND_ROWS` tile rows (16 threads on a 10,000² scene), bands
    would be so thin that most of their tiles are computed twice: the blocks are then 2-D
    (:func:`plan_blocks`, about ``max_pixels`` each), which share fewer tiles."""
    rows_n, cols_n = grid.shape
    bx = min(-(-grid.width // (max_columns or MAX_COLUMNS)), cols_n)
    by = min(max(-(-grid.height * grid.width // (bx * max_pixels)), -(-parallelism // bx)), rows_n)
    if by * bx < parallelism or by > max(1, rows_n // MIN_BAND_ROWS):
        return plan_blocks(grid, math.isqrt(max_pixels), parallelism)
    return _grid_blocks(grid, *_whole_rounds(by, bx, parallelism, rows_n, bx))  # columns stay as split
