"""Raster input and output: open and validate scenes, pick bands, masks, value scaling, windowed
reads with reflect padding, and atomic COG writers (no torch here)."""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.enums import ColorInterp, MaskFlags
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
from rasterio.windows import Window

from .errors import InvalidInputError, OutputExistsError, RasterIOError

OUTPUT_NODATA = 255
_COLOUR_NAMES = {"red": ColorInterp.red, "green": ColorInterp.green, "blue": ColorInterp.blue}


REMOTE_PREFIXES = ("http://", "https://", "s3://", "gs://", "az://", "/vsi")


def is_remote(path: str | Path) -> bool:
    """A URL or GDAL virtual path (``https://…/scene.tif``, ``s3://…``, ``/vsizip/…``): read through GDAL,
    never a local file (and never a ``Path``, which would fold the ``//`` of a URL)."""
    return isinstance(path, str) and path.startswith(REMOTE_PREFIXES)


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
    if src.crs is None:
        warnings.warn(f"{src.name}: no CRS; the output keeps the pixel grid without one", stacklevel=2)
    elif src.crs.is_geographic:
        warnings.warn(f"{src.name}: geographic CRS ({src.crs}); pixels are not square on the ground, "
                      "which the model was not trained for", stacklevel=2)


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
            raise InvalidInputError(f"{src.name}: --bands {','.join(map(str, bands))} names band(s) "
                                    f"{bad} but the file has {src.count}")
        if len(bands) != need:
            raise InvalidInputError(f"{src.name}: --bands gives {len(bands)} band(s), the weights need "
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
                            f"({', '.join(card_bands)}); choose them with --bands, e.g. --bands 3,2,1")


@dataclass(frozen=True)
class Scaling:
    """Raw value range per band mapped to [0, 1] before normalisation, decided once per scene."""

    low: tuple[float, ...]
    high: tuple[float, ...]
    rule: str

    def describe(self) -> str:
        pairs = ", ".join(f"{lo:g}-{hi:g}" for lo, hi in zip(self.low, self.high))
        return f"{self.rule}: {pairs}"


def fixed_scaling(dtype, n: int, input_range: Sequence[float], scale=None) -> Scaling | None:
    """The scaling that needs no look at the data, if any: ``--scale`` (numbers or one per band); the
    card's range when the weights were trained on raw values of another range; uint8 as is for an 8-bit
    model. None: the data must be sampled (``percentile_scaling``)."""
    if scale is not None:
        lo, hi = (np.broadcast_to(np.asarray(v, np.float64), (n,)) for v in scale)
        if not (lo < hi).all():
            raise InvalidInputError(f"--scale {scale[0]},{scale[1]}: MIN must be below MAX")
        return Scaling(tuple(map(float, lo)), tuple(map(float, hi)), "user --scale")
    lo, hi = input_range
    if (lo, hi) != (0, 255):
        return Scaling((float(lo),) * n, (float(hi),) * n, "weights' input range")
    if np.dtype(dtype) == np.uint8:
        return Scaling((0.0,) * n, (255.0,) * n, "uint8 as is")
    return None


def percentile_scaling(valid_values: Sequence[np.ndarray], sample: str) -> Scaling:
    """Per-band 2-98 % percentiles of each band's valid values (1-D arrays), ``sample`` says of what."""
    n = len(valid_values)
    if any(v.size == 0 for v in valid_values):
        return Scaling((0.0,) * n, (1.0,) * n, "no valid pixels")
    low, high = [], []
    for values in valid_values:
        p2, p98 = np.percentile(values.astype(np.float64), [2, 98])
        low.append(float(p2))
        high.append(float(p98) if p98 > p2 else float(p2) + 1.0)
    return Scaling(tuple(low), tuple(high), f"per-band 2-98 % percentiles of {sample}")


def decide_scaling(src: rasterio.DatasetReader, bands: Sequence[int], input_range: Sequence[float],
                   scale: tuple[float, float] | None = None, sample_size: int = 1024) -> Scaling:
    """Per-scene value scaling (``fixed_scaling``, else ``percentile_scaling`` of the valid pixels of a
    decimated read: GDAL serves it from overviews when the file has them)."""
    fixed = fixed_scaling(src.dtypes[bands[0] - 1], len(bands), input_range, scale)
    if fixed is not None:
        return fixed
    factor = max(1.0, max(src.width, src.height) / sample_size)
    shape = (len(bands), max(1, round(src.height / factor)), max(1, round(src.width / factor)))
    data = np.ma.masked_invalid(src.read(bands, out_shape=shape, masked=True).astype(np.float64))
    return percentile_scaling([band.compressed() for band in data], f"a {shape[2]}x{shape[1]} read")


def has_mask(src: rasterio.DatasetReader) -> bool:
    """Whether any band carries nodata, alpha or a GDAL mask (float NaN is checked separately)."""
    return any(flags != [MaskFlags.all_valid] for flags in src.mask_flag_enums)


def _dataset_mask(src: rasterio.DatasetReader, window: Window) -> np.ndarray:
    """Validity of a window; without any mask no pixels are read (a per-tile saving that matters)."""
    if not has_mask(src):
        return np.ones((int(window.height), int(window.width)), bool)
    return src.dataset_mask(window=window) > 0


def read_window(src: rasterio.DatasetReader, bands: Sequence[int], y0: int, x0: int, size: int,
                fill: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """(bands, size, size) float32 pixels and (size, size) validity of a tile that may run past the scene.

    Invalid pixels (nodata, alpha, GDAL mask, NaN) are set to ``fill`` (values that normalise to zero),
    so they do not push the network; the part past the scene is reflect-padded.
    """
    h, w = min(size, src.height - y0), min(size, src.width - x0)
    window = Window(x0, y0, w, h)
    try:
        data = src.read(bands, window=window).astype(np.float32)
        valid = _dataset_mask(src, window)
    except RasterioIOError as e:
        raise RasterIOError(f"{src.name}: read failed at row {y0}, col {x0} ({h}x{w} px); the file is "
                            f"corrupt or truncated ({str(e).splitlines()[0]})") from None
    if np.issubdtype(np.dtype(src.dtypes[bands[0] - 1]), np.floating):
        valid &= np.isfinite(data).all(axis=0)
    if not valid.all():
        data = np.where(valid[None], data, np.asarray(fill, np.float32)[:, None, None])
    if h < size or w < size:
        mode = "reflect" if min(h, w) > 1 else "edge"
        data = np.pad(data, ((0, 0), (0, size - h), (0, size - w)), mode=mode)
        valid = np.pad(valid, ((0, size - h), (0, size - w)), mode=mode)
    return data, valid


def read_validity(src: rasterio.DatasetReader, bands: Sequence[int], y0: int, rows: int) -> np.ndarray:
    """(rows, width) validity of full-width scene rows."""
    return window_validity(src, bands, Window(0, y0, src.width, rows))


def window_validity(src: rasterio.DatasetReader, bands: Sequence[int], window: Window) -> np.ndarray:
    """(height, width) validity of a window: nodata, alpha, GDAL mask and, for float bands, NaN."""
    try:
        valid = _dataset_mask(src, window)
        if np.issubdtype(np.dtype(src.dtypes[bands[0] - 1]), np.floating):
            valid &= np.isfinite(src.read(bands, window=window)).all(axis=0)
    except RasterioIOError as e:
        raise RasterIOError(f"{src.name}: read failed at rows {window.row_off}-{window.row_off + window.height}; "
                            f"the file is corrupt or truncated ({str(e).splitlines()[0]})") from None
    return valid


def _read_mask_block(path: str, y0: int, x0: int, h: int, w: int) -> np.ndarray:
    with open_raster(path) as src:
        return src.dataset_mask(window=Window(x0, y0, w, h)) > 0


def lazy_dataset_mask(path: str | Path, block_size: int = 2048):
    """GDAL's dataset mask (nodata, alpha, internal mask) of ``path`` as a lazy (y, x) Dask bool array."""
    import dask
    import dask.array as dsa

    with open_raster(path) as src:
        H, W = src.height, src.width
    rows = []
    for y0 in range(0, H, block_size):
        h = min(block_size, H - y0)
        row = []
        for x0 in range(0, W, block_size):
            w = min(block_size, W - x0)
            task = dask.delayed(_read_mask_block)(str(path), y0, x0, h, w)
            row.append(dsa.from_delayed(task, shape=(h, w), dtype=bool))
        rows.append(row)
    return dsa.block(rows)


def check_output(path: str | Path, overwrite: bool, inputs: Sequence[str | Path] = ()) -> Path:
    """Refuse an output that equals an input, sits in a missing/unwritable folder, or exists already."""
    path = Path(path)
    if any(path.resolve() == Path(other).resolve() for other in inputs if not is_remote(other)):
        raise InvalidInputError(f"{path}: output is the input file; choose another output path")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise InvalidInputError(f"{path}: output folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise InvalidInputError(f"{path}: output folder {folder} is not writable")
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path}: exists; pass --overwrite to replace it")
    return path


class RasterWriter:
    """Writes rows of a raster to a hidden temporary file beside the target, then publishes it as a
    COG (tiled, compressed, overviews) under the final name in one rename. Until ``commit`` nothing
    exists under the final name; ``abort`` removes the temporary file.

    Each ``write_rows`` reaches the disk before it returns (the file is reopened per write), so a run
    killed at any point keeps every row written so far: with ``key`` (a digest of the run's inputs
    and parameters) the temporary name is stable and ``resume=True`` continues in the same file.
    """

    def __init__(self, path: str | Path, profile: dict, *, colormap: dict | None = None,
                 tags: dict | None = None, band_descriptions: Sequence[str] = (),
                 overview_resampling: str = "MODE", compress: str = "DEFLATE", key: str | None = None,
                 resume: bool = False) -> None:
        self.path = Path(path)
        token = key or uuid.uuid4().hex[:8]
        self.tmp = self.path.with_name(f".{self.path.name}.{token}.part.tif")
        self._cog = self.path.with_name(f".{self.path.name}.{token}.cog.tif")
        self._overview_resampling = overview_resampling
        self._compress = compress
        if resume and self.tmp.exists():
            return
        # Untiled strips with fast ZSTD: rows are written in order, so strips are never re-read.
        profile = dict(profile, driver="GTiff", tiled=False, compress="ZSTD", zstd_level=1,
                       blockysize=16, BIGTIFF="IF_SAFER")
        profile.pop("blockxsize", None)
        with self._open("w", **profile) as dst:
            if colormap:
                dst.write_colormap(1, colormap)
            if tags:
                dst.update_tags(**{k: str(v) for k, v in tags.items()})
            for i, description in enumerate(band_descriptions, start=1):
                dst.set_band_description(i, description)

    def _open(self, mode: str, **profile):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            return rasterio.open(self.tmp, mode, **profile)

    def write_rows(self, y0: int, data: np.ndarray) -> None:
        """Write (bands, rows, width) or (rows, width) data starting at scene row ``y0``."""
        data = data if data.ndim == 3 else data[None]
        with self._open("r+") as dst:
            dst.write(data, window=Window(0, y0, data.shape[2], data.shape[1]))

    def commit(self) -> Path:
        try:
            rasterio.shutil.copy(self.tmp, self._cog, driver="COG", COMPRESS=self._compress,
                                 BLOCKSIZE=512, OVERVIEW_RESAMPLING=self._overview_resampling,
                                 NUM_THREADS="ALL_CPUS", BIGTIFF="IF_SAFER")
            os.replace(self._cog, self.path)
        finally:
            self.abort()
        return self.path

    def abort(self) -> None:
        """Remove the temporary files."""
        for p in (self.tmp, self._cog):
            p.unlink(missing_ok=True)
