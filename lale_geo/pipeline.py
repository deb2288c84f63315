"""Orchestrators: compose tiling, inference and stitching over an in-memory image or a raster file."""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio

from . import __version__
from .engines import create_engine
from .errors import InvalidInputError, LaleGeoError
from .inference import TilePredictor
from .io import (
    OUTPUT_NODATA,
    RasterWriter,
    Scaling,
    check_georeferencing,
    check_output,
    decide_scaling,
    is_remote,
    open_raster,
    read_validity,
    read_window,
    select_bands,
)
from .stitching import Band, RowStitcher, argmax_classes, labels_and_confidence, softmax
from .tiling import Tile, TileGrid, first_row_touching, read_padded
from .weights import DEFAULT_WEIGHTS, WeightsCard, load_weights


def predict_array(predictor: TilePredictor, image: np.ndarray, scale: tuple,
                  tile_size: int, overlap: int, batch_size: int = 8) -> np.ndarray:
    """Blended logits (classes, H, W) of an in-memory (bands, H, W) image, tiled like a scene.

    The last batch is padded to ``batch_size`` so that the model always sees one static shape.
    """
    _, H, W = image.shape
    grid = TileGrid(H, W, tile_size, overlap)
    stitcher = RowStitcher(grid, predictor.num_classes)
    out = np.empty((predictor.num_classes, H, W), np.float32)
    tiles = list(grid.tiles())
    for start in range(0, len(tiles), batch_size):
        batch = tiles[start:start + batch_size]
        logits = run_batch(predictor, [read_padded(image, t) for t in batch], scale, batch_size)
        for tile, tile_logits in zip(batch, logits):
            for band in stitcher.add(tile, tile_logits):
                out[:, band.y0:band.y0 + band.logits.shape[1]] = band.logits
    return out


def run_batch(predictor: Callable, tiles: Sequence[np.ndarray], scale: tuple, batch_size: int) -> np.ndarray:
    """Logits of ``tiles``, padding the batch to ``batch_size`` so that shapes stay static."""
    stack = np.stack(tiles)
    if len(tiles) < batch_size:
        stack = np.concatenate([stack, np.repeat(stack[-1:], batch_size - len(tiles), axis=0)])
    return predictor(stack, scale)[:len(tiles)]


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

    @property
    def megapixels_per_second(self) -> float:
        return self.width * self.height / 1e6 / self.seconds if self.seconds else float("nan")


def _tags(card: WeightsCard, grid: TileGrid, scaling: Scaling, bands: list[int], engine: str) -> dict:
    return {
        "LALE_GEO_VERSION": __version__, "LALE_GEO_MODEL": card.model, "LALE_GEO_WEIGHTS": card.name,
        "LALE_GEO_WEIGHTS_SHA256": card.sha256, "LALE_GEO_TILE_SIZE": grid.tile_size,
        "LALE_GEO_OVERLAP": grid.overlap, "LALE_GEO_BANDS": ",".join(map(str, bands)),
        "LALE_GEO_SCALING": scaling.describe(), "LALE_GEO_ENGINE": engine,
        "LALE_GEO_CLASSES": json.dumps(card.class_names),
        "LALE_GEO_UNTRAINED": "yes" if card.training.get("untrained") else "no",
    }


def _colormap(card: WeightsCard) -> dict:
    colormap = {c.id: (*c.colour, 255) for c in card.classes}
    colormap[OUTPUT_NODATA] = (0, 0, 0, 0)
    return colormap


def resolve_tiling(model, card: WeightsCard, tile_size: int | None, overlap: int | None) -> tuple[int, int]:
    """Tile size and overlap: the card's by default; a custom tile size keeps the card's overlap ratio."""
    if overlap is None:
        overlap = card.overlap if tile_size is None else card.overlap * tile_size // card.tile_size
    tile_size = tile_size or card.tile_size
    multiple = getattr(model, "size_multiple", 32)
    if tile_size % multiple:
        raise InvalidInputError(f"--tile-size {tile_size}: must be a multiple of {multiple} for {card.model}")
    if not 0 <= overlap < tile_size:
        raise InvalidInputError(f"--overlap {overlap}: must be below the tile size ({tile_size})")
    return tile_size, overlap


def predict(src: str | Path, dst: str | Path, *, weights: str | Path | None = None,
            model_and_card: tuple | None = None, bands: Sequence[int] | None = None,
            scale: tuple[float, float] | None = None, tile_size: int | None = None,
            overlap: int | None = None, batch_size: int = 8, device: str = "auto",
            probabilities: str | Path | None = None, confidence: str | Path | None = None,
            overwrite: bool = False, progress: Callable[[int], None] | None = None,
            on_start: Callable[[int], None] | None = None, scheduler: str | None = None,
            engine: str = "auto", resume: bool = False) -> PredictSummary:
    """Predict a land-cover COG for the raster ``src``, streaming rows so memory stays bounded.

    Args:
        src: any raster GDAL reads.
        dst: output class raster (uint8, nodata 255, COG with colour table and provenance tags).
        weights: shipped weights name or path (default: the shipped default weights).
        model_and_card: an explicit (model, card), e.g. ``random_weights()``; overrides ``weights``.
        bands: 1-based input bands in the card's order (default: from colour interpretation).
        scale: raw (min, max) mapped to [0, 1] (default: decided once per scene, see ``decide_scaling``).
        tile_size, overlap: tiling (default: the card's).
        probabilities, confidence: optional extra outputs, uint8 percent (0-100), nodata 255.
        engine: ``auto``, ``torch``, ``onnxruntime`` or ``openvino`` (see ``lale_geo.engines``).
        progress: called with the number of tiles finished since the last call.
        on_start: called once with the total number of tiles, before the first tile.
        scheduler: address of a ``dask.distributed`` scheduler: blocks are computed on that cluster
            (workers need the input file and the weights at the same paths) and written here.
        resume: continue an interrupted run with the same input, weights and parameters from its last
            finished rows (a journal beside the hidden temporary outputs); the map is identical to an
            uninterrupted run's. An interrupted run (Ctrl-C, kill) keeps what it needs for this.
    """
    started = time.perf_counter()
    if resume and is_remote(src):
        raise InvalidInputError(f"{src}: --resume needs a local input (a changed remote file would go "
                                "unnoticed); copy the scene locally to resume")
    outputs = [Path(p) for p in (dst, probabilities, confidence) if p is not None]
    for path in outputs:
        check_output(path, overwrite, inputs=[src])
    if len(set(p.resolve() for p in outputs)) < len(outputs):
        raise InvalidInputError(f"{dst}: the outputs must be different files")
    model, card = model_and_card or load_weights(weights or DEFAULT_WEIGHTS)
    if card.num_classes > 255:
        raise InvalidInputError(f"{card.name}: more than 255 classes do not fit a uint8 map with nodata 255")
    tile_size, overlap = resolve_tiling(model, card, tile_size, overlap)

    with open_raster(src) as scene:
        check_georeferencing(scene)
        band_indexes = select_bands(scene, card.bands, bands)
        scaling = decide_scaling(scene, band_indexes, card.input_range, scale)
        # Raw values that normalise to exactly zero: what masked pixels are filled with.
        fill = [lo + m * (hi - lo) for lo, hi, m in zip(scaling.low, scaling.high, card.mean)]
        grid = TileGrid(scene.height, scene.width, tile_size, overlap)
        if on_start:
            on_start(len(grid))
        if scheduler:
            predictor, engine_name = None, f"torch on dask.distributed {scheduler}"
        else:
            predictor = create_engine(engine, model, card, device=device, batch_size=batch_size,
                                      tile_size=tile_size)
            engine_name = predictor.name
        tags = _tags(card, grid, scaling, band_indexes, engine_name)
        key = _run_key(src, card, grid, band_indexes, scaling, engine_name, batch_size, outputs)
        outputs_open = MapOutputs(scene, card, tags, dst, probabilities, confidence, key=key, resume=resume)
        try:
            def emit(band: Band) -> None:
                valid = read_validity(scene, band_indexes, band.y0, band.logits.shape[1])
                outputs_open.write(band, valid)

            with rasterio.Env(GDAL_CACHEMAX=_gdal_cache_bytes(scene, tile_size, band_indexes)):
                if scheduler:
                    computed = _run_on_cluster(scheduler, src, (model, card) if model_and_card else None,
                                               weights, band_indexes, scaling, grid, batch_size, device, emit,
                                               progress)
                else:
                    computed = run_tiles(scene, grid, band_indexes, fill, scaling, predictor, batch_size, emit,
                                          progress, resume_at=outputs_open.rows_done)
                nodata = int(outputs_open.counts[OUTPUT_NODATA])
                if nodata == scene.width * scene.height:
                    warnings.warn(f"{src}: no valid pixels; the map is all nodata", stacklevel=2)
                outputs_open.commit()
        except KeyboardInterrupt:
            raise  # keep the temporary outputs and the journal: --resume continues from them
        except BaseException:
            outputs_open.abort()
            raise
        return PredictSummary(
            output=Path(dst), width=scene.width, height=scene.height, tiles=len(grid), tiles_computed=computed,
            seconds=time.perf_counter() - started,
            class_pixels={c.name: int(outputs_open.counts[c.id]) for c in card.classes}, nodata_pixels=nodata,
            pixel_area=_pixel_area_m2(scene), scaling=scaling.describe(), engine=engine_name,
            extra_outputs=outputs[1:])


def _gdal_cache_bytes(scene, tile_size: int, bands: Sequence[int]) -> int:
    """GDAL's block cache holds two rows of input tiles (so overlapping windows decode blocks once) and
    little more: its default, 5 % of RAM, would grow with the scene (reads and COG overviews)."""
    itemsize = np.dtype(scene.dtypes[0]).itemsize
    return max(64 << 20, 3 * tile_size * scene.width * len(bands) * itemsize)


def _pixel_area_m2(scene) -> float | None:
    """Ground area of one pixel in a projected CRS (None without one, or in degrees)."""
    if scene.crs is None or not scene.crs.is_projected:
        return None
    _, metres_per_unit = scene.crs.linear_units_factor
    return abs(scene.transform.a * scene.transform.e) * metres_per_unit**2


class MapOutputs:
    """The class map and the optional probability and confidence rasters of one run, written row band
    by row band (uint8; percent for probabilities; 255 = nodata) and published together."""

    def __init__(self, scene, card: WeightsCard, tags: dict, dst, probabilities=None, confidence=None, *,
                 key: str | None = None, resume: bool = False) -> None:
        profile = {"width": scene.width, "height": scene.height, "crs": scene.crs, "transform": scene.transform,
                   "dtype": "uint8", "nodata": OUTPUT_NODATA}
        self.counts = np.zeros(256, np.int64)
        self.rows_done = 0
        self.journal = Path(dst).with_name(f".{Path(dst).name}.{key}.journal.json") if key else None
        if resume and self.journal and self.journal.exists():
            state = json.loads(self.journal.read_text())
            self.rows_done, self.counts = state["rows_done"], np.asarray(state["counts"], np.int64)
        resume = self.rows_done > 0
        self._writer_options = {"key": key, "resume": resume}
        self.writers: list[RasterWriter] = []
        self.classes = self._open(dst, dict(profile, count=1), colormap=_colormap(card), tags=tags,
                                  band_descriptions=["land cover class"])
        percent_tags = dict(tags, LALE_GEO_UNITS="percent")
        self.probabilities = probabilities and self._open(
            probabilities, dict(profile, count=card.num_classes), tags=percent_tags,
            band_descriptions=card.class_names, overview_resampling="AVERAGE")
        self.confidence = confidence and self._open(
            confidence, dict(profile, count=1), tags=percent_tags, band_descriptions=["top-1 probability"],
            overview_resampling="AVERAGE")

    def _open(self, path, profile, **kwargs) -> RasterWriter:
        try:
            writer = RasterWriter(path, profile, **kwargs, **self._writer_options)
        except BaseException:
            self.abort()
            raise
        self.writers.append(writer)
        return writer

    def write(self, band: Band, valid: np.ndarray) -> None:
        if band.y0 < self.rows_done:  # written before an interruption (recomputed only for its neighbour)
            return
        if self.confidence:
            labels, top_probability = labels_and_confidence(band.logits)
        else:
            labels = argmax_classes(band.logits)[0]
        labels[~valid] = OUTPUT_NODATA
        self.counts += np.bincount(labels.ravel(), minlength=256)
        self.classes.write_rows(band.y0, labels)
        if self.probabilities:
            percent = np.rint(softmax(band.logits) * 100).astype(np.uint8)
            percent[:, ~valid] = OUTPUT_NODATA
            self.probabilities.write_rows(band.y0, percent)
        if self.confidence:
            percent = np.rint(top_probability * 100).astype(np.uint8)
            percent[~valid] = OUTPUT_NODATA
            self.confidence.write_rows(band.y0, percent)
        self.rows_done = band.y0 + band.logits.shape[1]
        if self.journal:  # after the rows are on disk: a kill between the two only repeats this band
            tmp = self.journal.with_suffix(".tmp")
            tmp.write_text(json.dumps({"rows_done": self.rows_done, "counts": self.counts.tolist()}))
            tmp.replace(self.journal)

    def commit(self) -> None:
        for writer in self.writers:
            writer.commit()
        if self.journal:
            self.journal.unlink(missing_ok=True)

    def abort(self) -> None:
        for writer in self.writers:
            writer.abort()
        if self.journal:
            self.journal.unlink(missing_ok=True)


def _run_key(src, card: WeightsCard, grid: TileGrid, bands, scaling: Scaling, engine: str, batch_size: int,
             outputs) -> str:
    """Digest of everything that decides the output: a journal only resumes the same run."""
    # A local input is identified by its size and time too; a remote one only by its address (so
    # predict refuses --resume for it: a changed remote file would not be noticed).
    stat = None if is_remote(src) else os.stat(src)
    source = [src] if stat is None else [str(Path(src).resolve()), stat.st_size, stat.st_mtime_ns]
    parts = [*source, card.sha256, grid.tile_size, grid.overlap,
             list(bands), scaling.describe(), engine, batch_size, [str(Path(p).resolve()) for p in outputs]]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def run_tiles(scene, grid: TileGrid, bands: list[int], fill: list[float], scaling: Scaling,
               predictor: TilePredictor, batch_size: int, emit: Callable[[Band], None],
               progress: Callable[[int], None] | None, resume_at: int = 0) -> int:
    """Read, batch, predict and stitch every tile in grid order; fully masked tiles are skipped.
    With ``resume_at`` > 0 (scene rows already written) start at the first tile row that reaches
    below them. Returns the number of tiles computed."""
    start_row = first_row_touching(grid, resume_at) if resume_at else 0
    stitcher = RowStitcher(grid, predictor.num_classes, start_row=start_row)
    if progress and start_row:
        progress(start_row * len(grid.col_origins))
    scale = (np.asarray(scaling.low), np.asarray(scaling.high))
    queue: list[tuple[Tile, np.ndarray | None]] = []  # grid order; None = skipped tile
    computed = 0

    def flush() -> None:
        nonlocal computed
        todo = [(t, d) for t, d in queue if d is not None]
        logits = iter(())
        if todo:
            try:
                logits = iter(run_batch(predictor, [d for _, d in todo], scale, batch_size))
            except Exception as e:
                windows = ", ".join(f"(row {t.y0}, col {t.x0}, {t.size} px)" for t, _ in todo)
                raise LaleGeoError(f"prediction failed for tiles at {windows}: {e}") from e
            computed += len(todo)
        for tile, data in queue:
            for band in stitcher.add(tile, next(logits) if data is not None else None):
                emit(band)
        if progress:
            progress(len(queue))
        queue.clear()

    for tile in grid.tiles():
        if tile.row < start_row:
            continue
        data, valid = read_window(scene, bands, tile.y0, tile.x0, tile.size, fill)
        queue.append((tile, data if valid.any() else None))
        if sum(d is not None for _, d in queue) == batch_size:
            flush()
    flush()
    return computed


def predict_region(predictor: TilePredictor, pixels: np.ndarray, valid: np.ndarray, origin: tuple[int, int],
                   grid: TileGrid, region: tuple[int, int, int, int], scale: tuple, fill: Sequence[float],
                   batch_size: int = 8) -> np.ndarray:
    """Blended logits (classes, h, w) of the scene ``region`` = (y0, x0, h, w), from ``pixels``, a
    (bands, ...) cut of the scene starting at ``origin`` = (y, x) that holds every tile meeting the region.

    Every grid tile that meets the region is run and weighted exactly as in a whole-scene run, so blocks
    computed independently (Dask, a cluster) equal the streamed result. Fully masked tiles are skipped.
    """
    ry, rx, rh, rw = region
    oy, ox = origin
    pixels = np.where(valid[None], pixels, np.asarray(fill, pixels.dtype)[:, None, None])
    acc = np.zeros((predictor.num_classes, rh, rw), np.float32)
    todo = []
    for t in grid.tiles():
        if t.y0 < ry + rh and t.y0 + t.size > ry and t.x0 < rx + rw and t.x0 + t.size > rx:
            local = Tile(t.row, t.col, t.y0 - oy, t.x0 - ox, t.size)
            if valid[local.window].any():
                todo.append((t, read_padded(pixels, local)))
    for start in range(0, len(todo), batch_size):
        batch = todo[start:start + batch_size]
        for (t, _), logits in zip(batch, run_batch(predictor, [d for _, d in batch], scale, batch_size)):
            # the part of the tile inside both the region and the scene
            y0, y1 = max(t.y0, ry), min(t.y0 + t.size, ry + rh, grid.height)
            x0, x1 = max(t.x0, rx), min(t.x0 + t.size, rx + rw, grid.width)
            w = grid.weights(t)[y0 - t.y0:y1 - t.y0, x0 - t.x0:x1 - t.x0]
            acc[:, y0 - ry:y1 - ry, x0 - rx:x1 - rx] += logits[:, y0 - t.y0:y1 - t.y0, x0 - t.x0:x1 - t.x0] * w
    return acc


def _run_on_cluster(address: str, src, model_and_card, weights, bands: list[int], scaling: Scaling,
                    grid: TileGrid, batch_size: int, device: str, emit: Callable[[Band], None],
                    progress: Callable[[int], None] | None, block_size: int = 4096) -> None:
    """Blended logits computed block by block on a Dask cluster, written here in row order with at
    most two row bands in flight (memory stays bounded). Blocks overlap by one tile: with 4096 px
    blocks and 512 px tiles about 1.2x the tiles of a local run are computed."""
    import rioxarray
    from distributed import Client

    from .io import lazy_dataset_mask
    from .xarray_api import segment_as

    with Client(address) as client:
        da = rioxarray.open_rasterio(src, chunks={"band": -1, "y": block_size, "x": block_size}, lock=False)
        da = da.isel(band=[b - 1 for b in bands])
        logits = segment_as(da, "logits", None if model_and_card else str(weights or DEFAULT_WEIGHTS),
                            model=model_and_card, scale=(scaling.low, scaling.high), tile_size=grid.tile_size,
                            overlap=grid.overlap, batch_size=batch_size, device=device, block_size=block_size,
                            mask=lazy_dataset_mask(src, block_size))
        starts = list(range(0, grid.height, block_size))
        futures = [client.compute(logits.data[:, y0:y0 + block_size]) for y0 in starts[:2]]
        for i, y0 in enumerate(starts):
            band = futures[i].result()
            futures[i] = None
            if i + 2 < len(starts):
                futures.append(client.compute(logits.data[:, starts[i + 2]:starts[i + 2] + block_size]))
            emit(Band(y0, band))
            if progress:
                rows_done = [t for t in grid.row_origins if y0 <= t < y0 + block_size]
                progress(len(rows_done) * len(grid.col_origins))
    return None


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

    @property
    def network_seconds(self) -> float:
        """The network's share of the run; reading, blending and writing come on top (a few %,
        see benchmarks/predict.py)."""
        return self.batches * self.seconds_per_batch


def plan(src: str | Path, *, weights: str | Path | None = None, model_and_card: tuple | None = None,
         bands: Sequence[int] | None = None, tile_size: int | None = None, overlap: int | None = None,
         batch_size: int = 8, device: str = "auto", engine: str = "auto", timing_batches: int = 2) -> Plan:
    """Tile count, a time estimate from ``timing_batches`` timed batches (after one warm-up) and the
    expected peak memory: this process's peak after the timing plus the stitching buffers and GDAL cache
    that a run adds (they depend on scene width, tile size and classes)."""
    import resource

    model, card = model_and_card or load_weights(weights or DEFAULT_WEIGHTS)
    tile_size, overlap = resolve_tiling(model, card, tile_size, overlap)
    with open_raster(src) as scene:
        check_georeferencing(scene)
        band_indexes = select_bands(scene, card.bands, bands)
        grid = TileGrid(scene.height, scene.width, tile_size, overlap)
        predictor = create_engine(engine, model, card, device=device, batch_size=batch_size, tile_size=tile_size)
        batch = np.stack([read_window(scene, band_indexes, t.y0, t.x0, tile_size, [0.0] * len(band_indexes))[0]
                          for t in list(grid.tiles())[:batch_size]])
        batch = np.concatenate([batch] * -(-batch_size // len(batch)))[:batch_size]
        scale = (np.zeros(len(band_indexes)), np.full(len(band_indexes), 255.0))
        predictor(batch, scale)  # warm-up (engines plan on their first call)
        start = time.perf_counter()
        for _ in range(timing_batches):
            predictor(batch, scale)
        per_batch = (time.perf_counter() - start) / timing_batches
        width = max(scene.width, tile_size)
        buffers = (card.num_classes * tile_size * width * 4 * 2  # accumulator and one finished band
                   + _gdal_cache_bytes(scene, tile_size, band_indexes))
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 + buffers
        return Plan(scene.width, scene.height, tile_size, overlap, len(grid), -(-len(grid) // batch_size),
                    predictor.name, per_batch, peak / 2**20)
