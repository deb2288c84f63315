"""Raster input: open scenes (local files, URLs, GDAL virtual paths), check their grid, choose the
bands that feed the model, decide which pixels are valid, and read windows (no torch, no writing)."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Literal, TypedDict

import numpy as np
import rasterio
import rasterio.env
from rasterio.enums import ColorInterp, MaskFlags
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
from rasterio.windows import Window

from ..errors import InvalidInputError, RasterIOError
from ..files import is_remote

_COLOUR_NAMES = {"red": ColorInterp.red, "green": ColorInterp.green, "blue": ColorInterp.blue}


_GDAL_LOGGERS = ("rasterio._env", "rasterio._err")
_CPLE_PREFIX = re.compile(r"CPLE_\w+(?::| in )")


class _Collect(logging.Handler):
    """Keeps GDAL's messages as rasterio logs them: errors at INFO ("GDAL signalled an error: ...
    msg='...'"), warnings at WARNING ("CPLE_AppDefined:JPEGLib:Corrupt JPEG data ...")."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.errors: list[str] = []
        self.warnings: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if text.startswith("GDAL signalled an error"):
            self.errors.append(text.split("msg=", 1)[-1].strip("'\""))
        elif record.levelno >= logging.WARNING:
            self.warnings.append(_CPLE_PREFIX.sub("", text, count=1))


class _Configured(TypedDict):
    depth: int  # nesting of gdal_messages() blocks
    saved: list[tuple[int, bool]]  # (level, propagate) of each GDAL logger before the outermost block


_configured: _Configured = {"depth": 0, "saved": []}  # GDAL loggers are reconfigured by the outermost collector only
_configure_lock = threading.Lock()


@contextlib.contextmanager
def gdal_messages() -> Iterator[_Collect]:
    """Collect GDAL's errors and warnings signalled inside the block (``.errors``, ``.warnings``), so that
    callers can make them fatal: rasterio only logs some of them (a failed COG copy, a libjpeg warning)
    and, outside an environment, GDAL prints them to stderr.

    Nested blocks are cheap: only the outermost one sets the loggers' level (each ``setLevel`` clears
    every logger's cache) and opens a rasterio environment; per tile read that cost about 1 ms."""
    collect = _Collect()
    loggers = [logging.getLogger(name) for name in _GDAL_LOGGERS]
    with _configure_lock:
        if _configured["depth"] == 0:
            _configured["saved"] = [(logger.level, logger.propagate) for logger in loggers]
            for logger in loggers:
                logger.setLevel(logging.INFO)
                logger.propagate = False  # they are raised (or deliberately ignored) by the caller, not printed
        _configured["depth"] += 1
    for logger in loggers:
        logger.addHandler(collect)
    try:
        # rasterio's error handler is installed only inside an environment (one per thread)
        with contextlib.nullcontext() if rasterio.env.hasenv() else rasterio.Env():
            yield collect
    finally:
        for logger in loggers:
            logger.removeHandler(collect)
        with _configure_lock:
            _configured["depth"] -= 1
            if _configured["depth"] == 0:
                for logger, (level, propagate) in zip(loggers, _configured["saved"]):
                    logger.setLevel(level)
                    logger.propagate = propagate


GDAL_CACHE_BYTES = 64 << 20
# Defaults for every read: a bounded block cache (GDAL's default is 5 % of RAM, and the reads need none:
# strips are read once) and remote reads that time out, retry a few times and merge ranges. A variable
# the user set in the environment wins over these.
READ_DEFAULTS = {
    "GDAL_CACHEMAX": GDAL_CACHE_BYTES,
    "GDAL_HTTP_TIMEOUT": 30, "GDAL_HTTP_CONNECTTIMEOUT": 10,
    "GDAL_HTTP_MAX_RETRY": 3, "GDAL_HTTP_RETRY_DELAY": 1,
    "GDAL_HTTP_MULTIRANGE": "YES", "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
}


def reading_env() -> rasterio.Env:
    """A rasterio environment with :data:`READ_DEFAULTS` (those not set in ``os.environ``): enter it
    before the first read, since GDAL sizes its block cache once, at its first use."""
    return rasterio.Env(**{k: v for k, v in READ_DEFAULTS.items() if k not in os.environ})


def open_raster(path: str | Path) -> rasterio.DatasetReader:
    """Open a raster for reading, with one-line errors for missing, non-raster or corrupt files. Local
    paths, URLs and GDAL virtual paths (see :func:`is_remote`) are accepted."""
    if not is_remote(path):
        path = Path(path)
        if not path.exists():
            raise RasterIOError(f"{path}: file not found")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        try:
            return rasterio.open(path)
        except RasterioIOError as e:
            raise RasterIOError(f"{path}: not a readable raster ({str(e).splitlines()[0]})") from None


def check_georeferencing(src: rasterio.DatasetReader) -> None:
    """Refuse rotated/sheared grids (the output would be misplaced); warn about missing/geographic CRS."""
    t = src.transform
    if t.b != 0 or t.d != 0:
        raise InvalidInputError(f"{src.name}: rotated or sheared geotransform is not supported; "
                                "warp it to a north-up grid first (gdalwarp)")
    gcps, gcp_crs = src.gcps
    if src.crs is None and gcps:
        warnings.warn(f"{src.name}: georeferenced by {len(gcps)} ground control points, not a geotransform; "
                      f"the map is on the scene's pixel grid and carries the same points"
                      f"{f' ({gcp_crs})' if gcp_crs else ''} (warp both with gdalwarp for a north-up map)",
                      stacklevel=2)
    elif src.crs is None:
        warnings.warn(f"{src.name}: no CRS; the output keeps the pixel grid without one", stacklevel=2)
    elif src.crs.is_geographic:
        warnings.warn(f"{src.name}: geographic CRS ({src.crs}); pixels are not square on the ground, "
                      "which the model was not trained for", stacklevel=2)


def check_dtype(src: rasterio.DatasetReader) -> None:
    """Refuse pixel types the models cannot take (complex: radar phase data needs its own processing)."""
    complex_types = sorted({d for d in src.dtypes if "complex" in d})
    if complex_types:
        raise InvalidInputError(f"{src.name}: complex pixels ({', '.join(complex_types)}) are not supported; "
                                "convert them to amplitude or intensity first (e.g. gdal_calc)")


def select_bands(src: rasterio.DatasetReader, card_bands: Sequence[str],
                 bands: Sequence[int] | None = None) -> list[int]:
    """1-based band indexes feeding the model, in the card's order.

    Explicit ``bands`` win; otherwise colour interpretation maps red/green/blue; otherwise the first
    non-alpha bands are taken when their number matches the card.
    """
    need = len(card_bands)
    if bands is not None:
        bad = [b for b in bands if not 1 <= b <= src.count]
        if bad:
            raise InvalidInputError(f"{src.name}: bands={','.join(map(str, bands))} names band(s) "
                                    f"{bad} but the file has {src.count}")
        if len(bands) != need:
            raise InvalidInputError(f"{src.name}: bands= gives {len(bands)} band(s), the weights need "
                                    f"{need} ({', '.join(card_bands)})")
        return list(bands)
    interp = list(src.colorinterp)
    if all(name in _COLOUR_NAMES for name in card_bands) and all(
            _COLOUR_NAMES[name] in interp for name in card_bands):
        return [interp.index(_COLOUR_NAMES[name]) + 1 for name in card_bands]
    data_bands = [i + 1 for i, c in enumerate(interp) if c != ColorInterp.alpha]
    if len(data_bands) == need:
        return data_bands
    raise InvalidInputError(f"{src.name}: {len(data_bands)} data band(s) but the weights need {need} "
                            f"({', '.join(card_bands)}); choose them with bands=, e.g. bands=3,2,1")


def valid_pixels(pixels: np.ndarray, nodata=None) -> np.ndarray:
    """(H, W) validity of (bands, H, W) pixels by GDAL's nodata rule (a pixel is nodata only where every
    band equals the nodata value) and, for float data, finiteness of every band."""
    valid = np.ones(pixels.shape[1:], bool)
    if nodata is not None and not (isinstance(nodata, float) and np.isnan(nodata)):
        valid = (pixels != nodata).any(axis=0)
    if np.issubdtype(pixels.dtype, np.floating):
        valid &= np.isfinite(pixels).all(axis=0)
    return valid


def has_mask(src: rasterio.DatasetReader) -> bool:
    """Whether any band carries nodata, alpha or a GDAL mask (float NaN is checked separately)."""
    return any(flags != [MaskFlags.all_valid] for flags in src.mask_flag_enums)


def _dataset_mask(src: rasterio.DatasetReader, window: Window) -> np.ndarray:
    """Validity of a window; without any mask no pixels are read (a per-tile saving that matters)."""
    if not has_mask(src):
        return np.ones((int(window.height), int(window.width)), bool)
    return src.dataset_mask(window=window) > 0


def window_name(window: Window) -> str:
    """A window as error messages name it: "row 0, col 512 (512x512 px)"."""
    return (f"row {int(window.row_off)}, col {int(window.col_off)} "
            f"({int(window.height)}x{int(window.width)} px)")


@contextlib.contextmanager
def checked_read(src: rasterio.DatasetReader, where: str | Window) -> Iterator[None]:
    """A read of ``where`` (a window, or words such as "overview 2") that fails loudly: any GDAL error or
    warning (a libjpeg "Corrupt JPEG data" warning comes with a wrong tile) is a RasterIOError naming the
    window and GDAL's own message, never a silently wrong map."""
    where = window_name(where) if isinstance(where, Window) else where
    with gdal_messages() as gdal:
        try:
            yield
        except RasterioIOError as e:
            cause = (gdal.errors or gdal.warnings or [str(e).strip().splitlines()[0]])[0]
            raise RasterIOError(f"{src.name}: read failed at {where}: {cause}") from None
    if gdal.errors or gdal.warnings:
        raise RasterIOError(f"{src.name}: read failed at {where}: {(gdal.errors or gdal.warnings)[0]}")


def pad_to_tile(part: np.ndarray, size: int) -> np.ndarray:
    """A (..., h, w) window cut at the scene's bottom/right edge, reflect-padded to (..., size, size)
    (edge-padded when a side is one pixel: there is nothing to reflect)."""
    h, w = part.shape[-2:]
    if h == size and w == size:
        return part
    mode: Literal["reflect", "edge"] = "reflect" if min(h, w) > 1 else "edge"
    return np.pad(part, [(0, 0)] * (part.ndim - 2) + [(0, size - h), (0, size - w)], mode=mode)


def read_padded(image: np.ndarray, tile) -> np.ndarray:
    """The window of ``tile`` (a :class:`lale_geo.inference.grid.Tile`) in a (bands, H, W) array, reflect-padded where
    it runs past the scene."""
    ys, xs = tile.window
    return pad_to_tile(image[:, ys, xs], tile.size)


def read_window(src: rasterio.DatasetReader, bands: Sequence[int], y0: int, x0: int, size: int,
                fill: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """(bands, size, size) pixels and (size, size) validity of a tile that may run past the scene.

    Pixels keep the raster's dtype (the engine's normalisation converts them once), except where invalid
    pixels (nodata, alpha, GDAL mask, NaN) are set to ``fill`` (values that normalise to zero, so they do
    not push the network): that tile is float32. The part past the scene is reflect-padded.
    """
    h, w = min(size, src.height - y0), min(size, src.width - x0)
    window = Window(x0, y0, w, h)
    with checked_read(src, window):
        data = src.read(bands, window=window)
        valid = _dataset_mask(src, window)
    if np.issubdtype(data.dtype, np.floating):
        valid &= np.isfinite(data).all(axis=0)
    if not valid.all():
        data = np.where(valid[None], data.astype(np.float32), np.asarray(fill, np.float32)[:, None, None])
    return pad_to_tile(data, size), pad_to_tile(valid, size)


def read_validity(src: rasterio.DatasetReader, bands: Sequence[int], y0: int, rows: int) -> np.ndarray:
    """(rows, width) validity of full-width scene rows."""
    return window_validity(src, bands, Window(0, y0, src.width, rows))


def window_validity(src: rasterio.DatasetReader, bands: Sequence[int], window: Window) -> np.ndarray:
    """(height, width) validity of a window: nodata, alpha, GDAL mask and, for float bands, NaN."""
    with checked_read(src, f"rows {window.row_off}-{window.row_off + window.height}"):
        valid = _dataset_mask(src, window)
        if np.issubdtype(np.dtype(src.dtypes[bands[0] - 1]), np.floating):
            valid &= np.isfinite(src.read(bands, window=window)).all(axis=0)
    return valid


def read_dataset_mask(path: str | Path, window: Window) -> np.ndarray:
    """GDAL's dataset mask (nodata, alpha, internal mask) of a window of ``path`` as (h, w) bools, in one
    checked read."""
    with reading_env(), open_raster(path) as src, checked_read(src, window):
        return _dataset_mask(src, window)


def lazy_dataset_mask(path: str | Path, window: Window | None = None, block_size: int = 2048):
    """:func:`read_dataset_mask` of ``window`` (default: the whole raster) as a lazy (h, w) Dask bool array,
    read by blocks where it is computed (a Dask worker opens the file itself)."""
    if window is None:
        with reading_env(), open_raster(path) as src:
            window = Window(0, 0, src.width, src.height)
    return lazy_windows(functools.partial(read_dataset_mask, str(path)), window, (), bool, block_size)


def lazy_windows(read: Callable[[Window], np.ndarray], window: Window, lead: tuple[int, ...], dtype,
                 block_size: int = 2048):
    """A lazy Dask array of ``window``, (*lead, height, width), made of ``read(block_window)`` calls: one Dask
    task per block of ``block_size`` px (``read`` must pickle, e.g. a partial of a module function)."""
    import dask
    import dask.array as dsa

    y0, x0, H, W = int(window.row_off), int(window.col_off), int(window.height), int(window.width)
    rows = []
    for y in range(0, H, block_size):
        h = min(block_size, H - y)
        row = []
        for x in range(0, W, block_size):
            w = min(block_size, W - x)
            task = dask.delayed(read)(Window(x0 + x, y0 + y, w, h))
            row.append(dsa.from_delayed(task, shape=(*lead, h, w), dtype=dtype))
        rows.append(row)
    return dsa.block(rows)
