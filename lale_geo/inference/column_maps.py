"""A scene too wide for one strip: its map computed column block by column block, each streamed top to
bottom into a temporary map of its columns, then joined row band by row band into the outputs.

Memory then follows the column block's width, not the scene's (a 120,000 px wide scene holds about
what a 12,000 px one does). Each block runs the grid tiles that meet its columns with the whole scene's
weights, in grid order, so the joined map equals a whole-width run's bit for bit; the tiles across a
seam are computed by both blocks (one tile column per seam: about 1 % more tiles at the default width).
No file block is decoded twice: the columns two blocks share are handed over (:class:`strips.Handover`).
The temporary maps lie beside the outputs under the run's key, so an interrupted run resumed with the
same parameters keeps the blocks it finished.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning
from rasterio.windows import Window

from ..io.outputs import FinishedRows, MapOutputs
from ..io.scaling import Scale
from ..io.writers import fatal_write_errors
from .engines import Engine
from .grid import TileGrid
from .stitching import Band, finish_rows
from .strips import ColumnBlock, Handover, StripSource
from .tile_loop import stream_scene

JOIN_BYTES = 16 * 2**20  # rows of the temporary maps joined at a time (all blocks, all bands)


def tiles_of(grid: TileGrid, blocks: Sequence[ColumnBlock]) -> int:
    """Tiles a run in these column blocks computes (those across a seam once per block)."""
    return sum(len(grid.row_origins) * len(grid.cols_meeting(b.x0, b.x1)) for b in blocks)


def predict_in_column_blocks(scene, bands: Sequence[int], fill: Sequence[float], grid: TileGrid,
                             blocks: Sequence[ColumnBlock], engine: Engine, scale: Scale, batch_size: int,
                             written: MapOutputs, progress: Callable[[int], None] | None = None) -> int:
    """Compute each column block into its temporary map (blocks finished by an interrupted run of the same
    parameters are kept), then write the joined rows to ``written``. Returns the tiles computed."""
    paths = [written.side_path(f"columns{b.x0}-{b.x1}.tif") for b in blocks]
    bands_out = 1 + (engine.num_classes if written.probabilities else 0) + (1 if written.confidence else 0)
    computed, handover = 0, None
    for i, block in enumerate(blocks):
        if _complete(paths[i], grid.height, block.width, bands_out):
            if progress:
                progress(len(grid.row_origins) * len(grid.cols_meeting(block.x0, block.x1)))
            _close(handover)
            handover = None
            continue
        following = blocks[i + 1] if i + 1 < len(blocks) else None
        passing_on = Handover(following.read_x0, following.file_x0) if following else None
        try:
            source = StripSource(scene, bands, fill, columns=block, handover_in=handover, handover_out=passing_on)
            with _ColumnMap(paths[i], grid.height, block.width, bands_out, written.classes.path) as column_map:
                emit = _finisher(source, column_map, bool(written.probabilities), bool(written.confidence))
                computed += stream_scene(source, grid, engine, scale, batch_size, emit, progress,
                                         columns=(block.x0, block.x1))
        except BaseException:
            _close(passing_on)
            raise
        finally:
            _close(handover)
        handover = passing_on
    _join(paths, blocks, grid.height, bands_out, written)
    return computed


def _finisher(source: StripSource, column_map: _ColumnMap, probabilities: bool,
              confidence: bool) -> Callable[[Band], None]:
    """What the stitcher's finished bands go to: classes (and percentages) written to the column map."""

    def emit(band: Band) -> None:
        valid = source.validity(band.y0, band.logits.shape[1])
        column_map.write(band.y0, finish_rows(band.logits, valid, probabilities, confidence))

    return emit


def _close(handover: Handover | None) -> None:
    if handover is not None:
        handover.close()


def _complete(path: Path, height: int, width: int, count: int) -> bool:
    """Whether ``path`` is a finished column map of this shape (published only once complete)."""
    if not path.exists():
        return False
    try:
        with _open(path) as src:
            return (src.height, src.width, src.count) == (height, width, count)
    except rasterio.errors.RasterioError:
        return False


def _open(path: Path, mode: str = "r", **profile):
    """A temporary column map (it has no georeferencing: GDAL's warning about it is noise)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        return rasterio.open(path, mode, **profile)


class _ColumnMap:
    """A temporary uint8 map of one column block (classes, then the optional percentages), written in row
    order and renamed to ``path`` once complete: a file under that name is always whole."""

    def __init__(self, path: Path, height: int, width: int, count: int, output: Path) -> None:
        self.path, self.output = path, output
        self.part = path.with_name(path.name + ".part")
        self.profile = dict(driver="GTiff", height=height, width=width, count=count, dtype="uint8", tiled=False,
                            blockysize=16, compress="ZSTD", zstd_level=1, BIGTIFF="IF_SAFER")

    def __enter__(self) -> _ColumnMap:
        with fatal_write_errors(self.output, "creating a temporary column map"):
            self.dst = _open(self.part, "w", **self.profile)
        return self

    def write(self, y0: int, rows: FinishedRows) -> None:
        data = np.concatenate([rows.labels[None]] + ([rows.probabilities] if rows.probabilities is not None else [])
                              + ([rows.confidence[None]] if rows.confidence is not None else []))
        with fatal_write_errors(self.output, f"writing rows {y0}-{y0 + data.shape[1]} of a temporary column map"):
            self.dst.write(data, window=Window(0, y0, data.shape[2], data.shape[1]))

    def __exit__(self, kind, *exc) -> None:
        with fatal_write_errors(self.output, "closing a temporary column map"):
            self.dst.close()
        if kind is None:
            os.replace(self.part, self.path)
        else:
            self.part.unlink(missing_ok=True)


def _join(paths: Sequence[Path], blocks: Sequence[ColumnBlock], height: int, count: int, written: MapOutputs) -> None:
    """The column maps side by side, row band by row band, into the outputs (from the rows not yet written)."""
    width = blocks[-1].x1
    rows_per_band = max(16, min(1024, JOIN_BYTES // (width * count)))
    maps = [_open(p) for p in paths]
    try:
        for y0 in range(written.rows_done, height, rows_per_band):
            rows = min(rows_per_band, height - y0)
            with fatal_write_errors(written.classes.path, f"reading rows {y0}-{y0 + rows} of a temporary column map"):
                data = np.concatenate([m.read(window=Window(0, y0, m.width, rows)) for m in maps], axis=2)
            probabilities = data[1:1 + (count - 1 - bool(written.confidence))] if written.probabilities else None
            written.write_finished(y0, FinishedRows(data[0], probabilities,
                                                    data[-1] if written.confidence else None))
    finally:
        for m in maps:
            m.close()
