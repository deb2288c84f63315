"""``predict`` and ``plan``: open the scene, resolve the settings, run the tile loop (locally or on a
cluster) and write the outputs. No loop of its own: tiles come from :mod:`lale_geo.inference.tile_loop`."""

from __future__ import annotations

import contextlib
import resource
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import numpy as np

from ..errors import InvalidInputError
from ..files import check_output, is_remote, locked_outputs
from ..io.band_files import scene_input
from ..io.classmap import pixel_area_m2
from ..io.outputs import OUTPUT_NODATA, MapOutputs, map_tags, run_key
from ..io.raster import (
    GDAL_CACHE_BYTES,
    check_dtype,
    check_georeferencing,
    open_raster,
    read_window,
    reading_env,
    select_bands,
)
from ..io.scaling import Scale
from .cluster import BlockJob, ClusterReport, Connection, run_on_cluster, worker_path
from .column_maps import predict_in_column_blocks, tiles_of
from .domain import scene_scaling
from .engines import ModelAndCard
from .grid import TileGrid, first_row_touching
from .settings import InferenceSettings, settings_with
from .stitching import Band, finish_rows
from .strips import MAX_READ_ROWS, StripSource, column_blocks, whole_width
from .tile_loop import stream_scene
from .tta import tta_cost


class Progress(Protocol):
    """What ``predict`` reports while it runs."""

    def start(self, tiles: int) -> None:
        """Called once with the number of tiles, before the first one."""

    def advance(self, tiles: int) -> None:
        """Called with the number of tiles finished since the last call."""


@dataclass
class PredictSummary:
    """What a prediction run produced and measured."""

    output: Path
    width: int
    height: int
    tiles: int
    tiles_computed: int | None  # None on a cluster (blocks run their own tiles)
    seconds: float
    class_pixels: dict[str, int]
    nodata_pixels: int
    pixel_area: float | None
    scaling: str
    engine: str
    extra_outputs: list[Path] = field(default_factory=list)
    cluster: ClusterReport | None = None

    @property
    def megapixels_per_second(self) -> float:
        return self.width * self.height / 1e6 / self.seconds if self.seconds else float("nan")


def predict(src: str | Path | Sequence[str | Path], dst: str | Path, settings: InferenceSettings | None = None, *,
            model: ModelAndCard | tuple | None = None, probabilities: str | Path | None = None,
            confidence: str | Path | None = None, overwrite: bool = False, resume: bool = False,
            scheduler: str | None = None, progress: Progress | None = None, **options) -> PredictSummary:
    """Predict a land-cover COG for the raster ``src``, streaming rows so memory stays bounded.

    Args:
        src: any raster GDAL reads (a path, a URL or a GDAL virtual path); a STAC item (``.json``, local or
            a URL) whose assets give the weights' bands by common name (see :mod:`lale_geo.io.band_files`);
            or a list of one-band files in the weights' band order, stacked on the finest one's grid.
        dst: output class raster (uint8, nodata 255, COG with colour table and provenance tags).
        settings: weights, bands, scaling, tiling, batch size, device and engine (defaults: the shipped
            weights and their card's tiling); ``options`` override single fields, e.g. ``tile_size=256``.
        model: an in-memory (model, card) pair, e.g. ``random_weights()``; overrides ``settings.weights``.
        probabilities, confidence: optional extra outputs, uint8 percent (0-100), nodata 255.
        overwrite: replace existing outputs (only at the very end of a successful run).
        resume: continue an interrupted run with the same input, weights and settings from its last
            finished rows (a journal beside the hidden temporary outputs); the map is identical to an
            uninterrupted run's. An interrupted run (Ctrl-C, kill) keeps what it needs for this.
        scheduler: address of a ``dask.distributed`` scheduler: blocks are computed on that cluster
            (workers need the input file at the same path) and written here.
        progress: told the number of tiles, then the tiles done as they finish.
    """
    started = time.perf_counter()
    with contextlib.ExitStack() as run:
        # a cluster connects while the weights load and the scene opens; closed at the end whatever happens
        connecting = run.enter_context(Connection(scheduler)) if scheduler else None
        resolved = settings_with(settings, options).resolve(model)
        given = src if isinstance(src, (str, Path)) else ", ".join(map(str, src))
        src = run.enter_context(scene_input(src, resolved.card.bands, dst))  # band files: their VRT
        if resume and is_remote(src):
            raise InvalidInputError(f"{src}: resume needs a local input (a changed remote file would go "
                                    "unnoticed); copy the scene locally to resume")
        outputs = [Path(p) for p in (dst, probabilities, confidence) if p is not None]
        for path in outputs:
            check_output(path, overwrite, inputs=[src])
        if len(set(p.resolve() for p in outputs)) < len(outputs):
            raise InvalidInputError(f"{dst}: the outputs must be different files")
        card = resolved.card
        with reading_env(), locked_outputs(outputs), open_raster(src) as scene:
            check_dtype(scene)
            check_georeferencing(scene)
            band_indexes = select_bands(scene, card.bands, resolved.settings.bands)
            scaling, warned = scene_scaling(card, scene, band_indexes, resolved.settings.scale,
                                            resolved.settings.strict_domain, str(given))
            for warning in warned:
                warnings.warn(warning, stacklevel=2)  # points at the caller of predict
            scale = scaling.scale
            fill = scale.fill(card.mean)
            grid = TileGrid(scene.height, scene.width, resolved.tile_size, resolved.overlap)
            blocks = [whole_width(scene.width)] if scheduler else column_blocks(scene, grid, band_indexes)
            if progress:
                progress.start(tiles_of(grid, blocks))
            engine = None if scheduler else resolved.create_engine()
            engine_name = f"dask.distributed at {scheduler}" if engine is None else engine.name
            tags = map_tags(resolved, scaling.describe(), band_indexes, engine_name)
            key = run_key(src, card, resolved.to_json(), band_indexes, scaling, engine_name, outputs)
            written = MapOutputs(scene, card, tags, dst, probabilities, confidence, key=key, resume=resume,
                                 overwrite=overwrite)
            advance = progress.advance if progress else None
            cluster = None
            try:
                if scheduler:
                    where = src if is_remote(src) else str(Path(src).resolve())  # workers need not share our cwd
                    # workers get absolute paths (they need not share our folder) for the weights too
                    settings = replace(resolved.settings, weights=worker_path(resolved.settings.weights))
                    job = BlockJob(where, grid, tuple(band_indexes), scale, tuple(fill), settings,
                                   probabilities is not None, confidence is not None)
                    cluster = run_on_cluster(scheduler, job, resolved, written.write_finished, advance,
                                             resume_at=written.rows_done, connecting=connecting)
                    computed, engine_name = None, cluster.engine
                elif len(blocks) > 1:  # too wide for one strip
                    assert engine is not None  # made above for a run without a scheduler
                    computed = predict_in_column_blocks(scene, band_indexes, fill, grid, blocks, engine, scale,
                                                        resolved.batch_size, written, advance)
                elif written.rows_done >= scene.height:  # interrupted after its last rows, before publishing
                    computed = 0
                    if advance:
                        advance(len(grid))
                else:
                    source = StripSource(scene, band_indexes, fill, first_row=_first_row_read(grid, written.rows_done))

                    def emit(band: Band) -> None:
                        valid = source.validity(band.y0, band.logits.shape[1])
                        if band.y0 >= written.rows_done:  # else written before an interruption
                            written.write_finished(band.y0, finish_rows(band.logits, valid, bool(probabilities),
                                                                        bool(confidence)))

                    assert engine is not None  # made above for a run without a scheduler
                    if advance and written.rows_done:  # the tiles of the rows written before an interruption
                        advance(first_row_touching(grid, written.rows_done) * len(grid.col_origins))
                    computed = stream_scene(source, grid, engine, scale, resolved.batch_size, emit, advance,
                                            resume_at=written.rows_done)
                nodata = int(written.counts[OUTPUT_NODATA])
                if nodata == scene.width * scene.height:
                    warnings.warn(f"{src}: no valid pixels; the map is all nodata", stacklevel=2)
                written.commit()
            except KeyboardInterrupt:
                raise  # keep the temporary outputs and the journal: resume continues from them
            except BaseException:
                written.abort()
                raise
            return PredictSummary(
                output=Path(dst), width=scene.width, height=scene.height, tiles=len(grid), tiles_computed=computed,
                seconds=time.perf_counter() - started,
                class_pixels={c.name: int(written.counts[c.id]) for c in card.classes}, nodata_pixels=nodata,
                pixel_area=_pixel_area_m2(scene), scaling=scaling.describe(), engine=engine_name,
                extra_outputs=outputs[1:], cluster=cluster)


def _first_row_read(grid: TileGrid, rows_done: int) -> int:
    """The first scene row the tiles read: 0, or the top of the tile row a resumed run starts at."""
    return grid.row_origins[first_row_touching(grid, rows_done)] if rows_done else 0


def _strip_bytes(scene, tile_size: int, bands: Sequence[int], width: int) -> int:
    """What the strip reader holds at most: a tile row's strip and a block row of the file ahead of it."""
    itemsize = np.dtype(scene.dtypes[bands[0] - 1]).itemsize
    block_rows = scene.block_shapes[bands[0] - 1][0] if scene.block_shapes else 1
    return (2 * tile_size + min(block_rows, MAX_READ_ROWS)) * width * (len(bands) * itemsize + 1)


def _pixel_area_m2(scene) -> float | None:
    """Ground area of one pixel in a projected CRS (None without one, or in degrees: it changes by row)."""
    return pixel_area_m2(scene) if scene.crs is not None and scene.crs.is_projected else None


@dataclass
class Plan:
    """What a prediction would do, from a short timing of the chosen engine (nothing is written)."""

    width: int
    height: int
    tile_size: int
    overlap: int
    tiles: int
    batches: int
    engine: str
    seconds_per_batch: float
    peak_memory_mb: float
    passes_per_tile: int = 1  # test-time augmentation runs the network this many times per tile

    @property
    def network_seconds(self) -> float:
        """The network's share of the run; reading, blending and writing come on top (a few %,
        see benchmarks/predict.py)."""
        return self.batches * self.seconds_per_batch


def plan(src: str | Path | Sequence[str | Path], settings: InferenceSettings | None = None, *,
         model: ModelAndCard | tuple | None = None,
         timing_batches: int = 2, **options) -> Plan:
    """Tile count, a time estimate from ``timing_batches`` timed batches (after one warm-up) and the
    expected peak memory: this process's peak after the timing plus the stitching buffers and GDAL cache
    that a run adds (they depend on scene width, tile size and classes)."""
    resolved = settings_with(settings, options).resolve(model)
    card, tile_size, batch_size = resolved.card, resolved.tile_size, resolved.batch_size
    with tempfile.TemporaryDirectory() as folder, scene_input(src, card.bands, Path(folder) / "plan.tif") as src, \
            open_raster(src) as scene:
        check_dtype(scene)
        check_georeferencing(scene)
        band_indexes = select_bands(scene, card.bands, resolved.settings.bands)
        grid = TileGrid(scene.height, scene.width, tile_size, resolved.overlap)
        engine = resolved.create_engine()
        first = [t for t, _ in zip(grid.tiles(), range(batch_size))]
        batch = np.stack([read_window(scene, band_indexes, t.y0, t.x0, tile_size, [0.0] * len(band_indexes))[0]
                          for t in first])
        batch = np.concatenate([batch] * -(-batch_size // len(batch)))[:batch_size]
        scale = Scale.of(np.zeros(len(band_indexes)), np.full(len(band_indexes), 255.0))
        engine(batch, scale)  # warm-up (engines plan on their first call)
        start = time.perf_counter()
        for _ in range(timing_batches):
            engine(batch, scale)
        per_batch = (time.perf_counter() - start) / timing_batches
        # the widest strip: the scene's, or a column block's (with the tiles across its seams)
        width = max(min(b.read_x1 - b.read_x0, scene.width) for b in column_blocks(scene, grid, band_indexes))
        width = max(width, tile_size)
        buffers = (card.num_classes * tile_size * width * 4 * 2  # accumulator and one finished band
                   + GDAL_CACHE_BYTES + _strip_bytes(scene, tile_size, band_indexes, width))
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 + buffers
        return Plan(scene.width, scene.height, tile_size, resolved.overlap, len(grid), -(-len(grid) // batch_size),
                    engine.name, per_batch, peak / 2**20, tta_cost(resolved.settings.tta))
