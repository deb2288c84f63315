"""``segment(da)``: the prediction engine for xarray/Dask users, lazy and georeferenced.

The scene is cut into blocks aligned to the tile grid (:func:`lale_geo.inference.grid.plan_blocks`); each block
runs every grid tile that meets it through the same tile loop and engine rule as ``lale-geo predict``,
with the whole scene's blending weights, so blocks computed anywhere agree with the streamed map.
Dask input stays lazy; each process (a local scheduler, a ``dask.distributed`` worker) creates its
engine once per weights.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import replace
from os import PathLike
from typing import TypedDict

import dask
import dask.array as dsa
import numpy as np
import rioxarray  # noqa: F401 - registers the .rio accessor that paths and maps use
import xarray as xr
from dask.delayed import Delayed
from rasterio.enums import MaskFlags
from rasterio.windows import Window

from ..errors import InvalidInputError, RasterIOError
from ..io.outputs import OUTPUT_NODATA, map_tags
from ..io.raster import (
    check_dtype,
    check_georeferencing,
    checked_read,
    lazy_dataset_mask,
    lazy_windows,
    open_raster,
    read_dataset_mask,
    reading_env,
    select_bands,
    valid_pixels,
)
from ..io.scaling import Scaling, fixed_scaling, sample_scaling
from .domain import guard_grid, scene_scaling
from .engines import ModelAndCard
from .grid import Block, TileGrid, plan_blocks
from .settings import InferenceSettings, ResolvedSettings, settings_with
from .stitching import finish_rows, softmax
from .tile_loop import ArraySource, predict_region


class _BlockOptions(TypedDict):
    """The keyword arguments of :func:`_segment_block` that every block of one ``segment()`` shares."""

    weights: str | ModelAndCard | Delayed  # a name, or the model (in a Dask graph: shipped once, as one object)
    settings: InferenceSettings
    grid: TileGrid
    nodata: float | None
    probabilities: bool


def _segment_block(pixels: np.ndarray, scaling, mask, *, weights, settings: InferenceSettings, grid: TileGrid,
                   block: Block, nodata, probabilities: bool) -> np.ndarray:
    """Classes or probabilities of one block (runs in a Dask task); ``pixels`` is the block's extent."""
    pair = ModelAndCard.named(weights) if isinstance(weights, str) else ModelAndCard.of(weights)
    engine = ResolvedSettings(settings, pair).create_engine(block=True)
    scale = scaling.scale
    valid = valid_pixels(pixels, nodata)
    if mask is not None:
        valid &= np.asarray(mask, bool)
    ey, ex = block.extent[:2]
    source = ArraySource(pixels, valid, scale.fill(pair[1].mean), origin=(ey, ex))
    logits = predict_region(source, grid, block.region, engine, scale, settings.batch_size)
    ry, rx, rh, rw = block.region
    core_valid = valid[ry - ey:ry - ey + rh, rx - ex:rx - ex + rw]
    if probabilities:
        probs = softmax(logits)
        probs[:, ~core_valid] = np.nan
        return probs
    return finish_rows(logits, core_valid).labels


def segment(da: xr.DataArray | str | PathLike, weights: str | None = None, *, model: ModelAndCard | tuple | None = None,
            probabilities: bool = False, block_size: int = 4096, mask: xr.DataArray | np.ndarray | None = None,
            **options) -> xr.DataArray:
    """Land-cover classes (or per-class probabilities) of a (band, y, x) DataArray.

    Args:
        da: image with dims (band, y, x), e.g. from ``rioxarray.open_rasterio(path, chunks=True)`` (an array
            used as opened, unmasked and untouched, is read through the checked reader too); or a
            raster's path or URL, read lazily by blocks through the same checked reader as ``lale-geo
            predict`` (a damaged block is a one-line error naming the window), with predict's band choice,
            mask, scaling and domain guard.
        weights: shipped weights name or path (default: the shipped default weights).
        model: an explicit (model, card) pair instead of ``weights`` (e.g. ``random_weights()``).
        probabilities: return (class, y, x) float32 probabilities (NaN on nodata) instead of class ids.
        block_size: largest output block edge in pixels; blocks follow the tile grid, and a scene gets
            at least one block per thread of the current Dask scheduler when it is large enough. A block
            holds its float32 logits (classes x block) while it runs.
        mask: optional (y, x) validity (True = valid); nodata values and NaN are always masked. By default,
            an array opened from a file (``rioxarray.open_rasterio``) gets that file's GDAL dataset mask
            (alpha band, internal mask) where it has one, as ``lale-geo predict`` does.
        options: :class:`~lale_geo.inference.settings.InferenceSettings` fields (``bands``: 1-based positions
            along ``band`` in the weights' order; ``scale``; ``tile_size``, ``overlap``, ``batch_size``,
            ``device``, ``engine``), as for ``lale-geo predict``.

    Returns:
        uint8 class ids (nodata 255) with the input's y/x coordinates, CRS and transform and attrs
        ``class_names``, ``class_colours``, ``_FillValue`` and the ``LALE_GEO_*`` tags ``predict`` writes
        (``rio.to_raster`` writes them, so ``lale-geo info``, ``vectorize``, ``preview`` and ``stac`` read
        the file like one of predict's maps); lazy when ``da`` is Dask-backed.

    Example:
        >>> da = rioxarray.open_rasterio("scene.tif", chunks=True)
        >>> classes = lale_geo.segment(da)          # lazy
        >>> classes.rio.to_raster("landcover.tif")  # computes
    """
    resolved = settings_with(InferenceSettings(weights=weights), options).resolve(model)
    card, settings = resolved.card, resolved.settings
    from_file = isinstance(da, (str, PathLike))
    decided: Scaling | None = None  # a file's scaling, decided as predict decides it
    if isinstance(da, (str, PathLike)):
        opened, bands, decided, warned = scene_array(da, card, settings)
        for warning in warned:
            warnings.warn(warning, stacklevel=2)
        resolved = ResolvedSettings(replace(settings, bands=tuple(bands)), resolved.model)
        settings = resolved.settings
        image = _checked_image(opened)
    else:
        image = _checked_image(_with_checked_reads(da))
    if settings.bands is not None and not from_file:
        outside = [b for b in settings.bands if b > image.sizes["band"]]
        if outside:
            raise InvalidInputError(f"bands={list(settings.bands)}: band(s) {outside} beyond the array's "
                                    f"{image.sizes['band']} (bands are 1-based)")
        if len(settings.bands) != len(card.bands):
            raise InvalidInputError(f"bands={list(settings.bands)}: {len(settings.bands)} band(s), the weights "
                                    f"need {len(card.bands)} ({', '.join(card.bands)})")
        image = image.isel(band=[b - 1 for b in settings.bands])
    if image.sizes["band"] != len(card.bands):
        raise InvalidInputError(f"segment: {image.sizes['band']} band(s), the weights need {len(card.bands)} "
                                f"({', '.join(card.bands)}); pick them with bands=[...]")
    _, H, W = image.shape
    # the grid alone (nothing is computed); a file's scene was guarded, pixels included, when it was opened
    if not from_file and hasattr(image, "rio") and image.rio.crs is not None:
        for warning in guard_grid(card, image.rio.crs, _grid_of(image), H, W, strict=settings.strict_domain,
                                  name="segment"):
            warnings.warn(warning, stacklevel=2)
    grid = TileGrid(H, W, resolved.tile_size, resolved.overlap)
    nodata = image.rio.nodata if hasattr(image, "rio") else image.attrs.get("_FillValue")
    data = image.data
    lazy = isinstance(data, dsa.Array)
    if mask is None:
        mask = _file_mask(image, lazy)
    mask_data = None if mask is None else getattr(mask, "data", mask)
    if mask_data is not None and tuple(mask_data.shape) != (H, W):
        raise InvalidInputError(f"segment: mask shape {tuple(mask_data.shape)} differs from the image's {(H, W)}")
    if mask_data is not None and not lazy:
        mask_data = np.asarray(mask_data)

    if not lazy:
        data = np.asarray(data)
    scaling: Scaling | Delayed | None = decided or fixed_scaling(data.dtype, len(card.bands), card.input_range,
                                                                 settings.scale)
    if scaling is None:  # a ~1024 px strided sample decides it, once per scene (computed with the map)
        step = max(1, -(-max(H, W) // 1024))
        sample = data[:, ::step, ::step]
        scaling = (dask.delayed(sample_scaling)(sample, nodata, card.input_range, settings.scale) if lazy
                   else sample_scaling(sample, nodata, card.input_range, settings.scale))

    weights_ref: str | ModelAndCard | Delayed = settings.weights or resolved.model
    if lazy and not isinstance(weights_ref, str):
        weights_ref = dask.delayed(weights_ref)  # ship an in-memory model once, not once per block
    common = _BlockOptions(weights=weights_ref, settings=settings, grid=grid, nodata=nodata,
                           probabilities=probabilities)
    lead = (card.num_classes,) if probabilities else ()
    out_dtype = np.float32 if probabilities else np.uint8

    def compute(block: Block):
        ey, ex, eh, ew = block.extent
        cut = data[:, ey:ey + eh, ex:ex + ew]
        mask_cut = None if mask_data is None else mask_data[ey:ey + eh, ex:ex + ew]
        if not lazy:
            return _segment_block(cut, scaling, mask_cut, block=block, **common)
        task = dask.delayed(_segment_block)(cut, scaling, mask_cut, block=block, **common)
        return dsa.from_delayed(task, shape=lead + block.region[2:], dtype=out_dtype)

    parallelism = _scheduler_threads() if lazy else 1
    rows = [[compute(b) for b in row] for row in plan_blocks(grid, block_size, parallelism)]
    xp = dsa if lazy else np
    result = xp.concatenate([xp.concatenate(row, axis=-1) for row in rows], axis=-2)

    dims = ("class", "y", "x") if probabilities else ("y", "x")
    coords = {k: v for k, v in image.coords.items() if set(v.dims) <= {"y", "x"}}
    if probabilities:
        coords["class"] = card.class_names
    out = xr.DataArray(result, dims=dims, coords=coords, name="probabilities" if probabilities else "land_cover")
    out.attrs.update(class_names=card.class_names, class_colours=[list(c.colour) for c in card.classes],
                     weights=card.name, weights_sha256=card.sha256, tile_size=resolved.tile_size,
                     overlap=resolved.overlap, lale_geo_settings=resolved.to_json())
    # the tags predict writes: rio.to_raster writes attrs as tags, so info, vectorize, preview and stac read
    # the map as one of predict's
    out.attrs.update(map_tags(resolved, _scaling_description(scaling, data.dtype, len(card.bands), resolved),
                              settings.bands or list(range(1, len(card.bands) + 1)), f"segment ({settings.engine})"))
    if not probabilities:
        out.attrs["_FillValue"] = OUTPUT_NODATA
    if hasattr(image, "rio") and image.rio.crs is not None:
        out = out.rio.write_crs(image.rio.crs)
    if hasattr(image, "rio"):
        out = out.rio.write_transform(_grid_of(image))
    return out


def _read_block(path: str, bands: list[int], window: Window) -> np.ndarray:
    with reading_env(), open_raster(path) as src, checked_read(src, window):
        return src.read(bands, window=window)


READ_CHUNK = 2048  # px on a side of the blocks a file is read in, lazily


def scene_array(path: str | PathLike, card, settings: InferenceSettings,
                chunk: int = READ_CHUNK) -> tuple[xr.DataArray, list[int], Scaling, list[str]]:
    """The scene at ``path`` as ``predict`` takes it: a lazy (band, y, x) DataArray of the bands that feed
    the model (``settings.bands``, else colour interpretation, else the non-alpha bands), read by
    ``chunk``-pixel blocks through the checked reader, with rioxarray's coordinates, CRS, transform and
    nodata; the bands; the scene's scaling and the domain guard's warnings (from one bounded sample)."""
    path = str(path)
    with reading_env(), open_raster(path) as src:
        check_dtype(src)
        check_georeferencing(src)
        chosen = select_bands(src, card.bands, settings.bands)
        scaling, warned = scene_scaling(card, src, chosen, settings.scale, settings.strict_domain, path)
        H, W, t, crs, nodata = src.height, src.width, src.transform, src.crs, src.nodata
        dtype = src.dtypes[chosen[0] - 1]
    pixels = lazy_windows(functools.partial(_read_block, path, chosen), Window(0, 0, W, H), (len(chosen),), dtype,
                          chunk)
    coords = {"band": chosen, "y": t.f + (np.arange(H) + 0.5) * t.e, "x": t.c + (np.arange(W) + 0.5) * t.a}
    da = xr.DataArray(pixels, dims=("band", "y", "x"), coords=coords)
    da = da.rio.write_transform(t)
    if crs is not None:
        da = da.rio.write_crs(crs)
    if nodata is not None:
        da = da.rio.write_nodata(nodata)
    da.encoding["source"] = path
    return da, chosen, scaling, warned


def _with_checked_reads(da):
    """``da``, reading its pixels through the checked reader when they are a file's pixels as
    ``rioxarray.open_rasterio(path, chunks=...)`` read them, whole or one selection of them (``isel``, ``sel``,
    ``rio.clip_box``, ``rio.isel_window``, bands picked or reordered): a damaged block is then a one-line error
    naming the window, as in ``predict``, where rioxarray's read would give GDAL's warning and a silently
    different map.

    Coordinates can be relabelled without a trace in the Dask graph, so they only propose the window and
    bands; the substitution is made only when indexing the array's own open with them gives the very Dask
    array ``da`` holds (the same name: the same computation). Anything else (masked or scaled by rioxarray,
    subsampled, selected in several steps, computed, warped, relabelled, another file's pixels) is read as
    given. A file rewritten since it was opened is read as it is now (rioxarray's open handle may still
    serve the old one)."""
    path = da.encoding.get("source") if isinstance(da, xr.DataArray) else None
    data = getattr(da, "data", None)
    if (not path or not isinstance(data, dsa.Array) or da.dims != ("band", "y", "x") or not hasattr(da, "rio")
            or 0 in da.shape):
        return da
    if not _raw_read_of(data, str(path)):
        return da  # masked, scaled or warped by rioxarray, or the pixels of another file
    with reading_env():
        try:
            src = open_raster(path)
        except RasterIOError:  # the array outlived its file: rioxarray's reads will say so
            return da
        with src:
            count, dtypes, crs = src.count, set(src.dtypes), src.crs
            window = _file_window(da, src.transform, src.width, src.height)
            file_shape = (src.count, src.height, src.width)
    # rioxarray's band coordinate is the file's band number (1-based), kept through selections
    numbers = np.atleast_1d(da.coords["band"].values) if "band" in da.coords else np.array([])
    bands = [int(b) for b in numbers] if np.issubdtype(numbers.dtype, np.integer) else []
    same = (window is not None and dtypes == {np.dtype(da.dtype).name} and da.rio.crs == crs
            and len(bands) == da.shape[0] and all(1 <= b <= count for b in bands))
    if not same or not _is_selection_of_its_open(data, file_shape, [b - 1 for b in bands], window):
        return da
    # chunks of at most 2048 px: rioxarray's chunks=True makes one chunk of a whole band, which read as one
    # task would hold back every block until the whole scene is decoded
    chunk = min(READ_CHUNK, max(data.chunksize[1:]))
    pixels = lazy_windows(functools.partial(_read_block, str(path), bands), window, (len(bands),), da.dtype, chunk)
    return da.copy(data=pixels)


def _raw_read_of(data: dsa.Array, path: str) -> bool:
    """Whether the one ``open_rasterio`` in ``data``'s graph reads the file ``path`` raw: not masked or scaled
    (NaN for nodata, per-band scales and offsets, which a raw read would drop), not through a VRT, whole.
    rioxarray's array sits in the graph wrapped in xarray's lazy-indexing adapters; anything unexpected
    answers False (the array is then read as given)."""
    names = [name for name in data.dask.layers if name.startswith("original-open_rasterio-")]
    values = list(data.dask.layers[names[0]].values()) if len(names) == 1 else []
    if len(values) != 1:
        return False
    array, key = values[0], None
    for _ in range(8):  # ImplicitToExplicitIndexingAdapter > CopyOnWriteArray > LazilyIndexedArray > ...
        key = getattr(array, "key", key)
        if type(array).__name__ == "RasterioArrayWrapper":
            break
        array = getattr(array, "array", None)
    else:
        return False
    opened = getattr(getattr(array, "manager", None), "_args", ())[:1]  # the path the open reads
    whole = key is None or all(k == slice(None) for k in getattr(key, "tuple", (None,)))
    return (getattr(array, "masked", True) is False and getattr(array, "mask_and_scale", True) is False
            and getattr(array, "vrt_params", True) is None and [str(p) for p in opened] == [path] and whole)


def _is_selection_of_its_open(data: dsa.Array, file_shape: tuple[int, int, int], positions: list[int],
                              window: Window) -> bool:
    """Whether ``data`` is its graph's ``open_rasterio`` array (of ``file_shape``) indexed by the band
    ``positions`` (0-based) and ``window``, in one step or none: Dask names arrays by a hash of how they were
    made, so an equal name is the same computation."""
    opens = [name for name in data.dask.layers if name.startswith("open_rasterio-")]
    if len(opens) != 1 or not positions:
        return False
    made = getattr(data.dask.layers[opens[0]], "collection_annotations", None) or {}
    if "chunks" not in made or tuple(made.get("shape", ())) != file_shape:
        return False
    opened = dsa.Array(data.dask, opens[0], made["chunks"], dtype=data.dtype)
    y0, x0, h, w = int(window.row_off), int(window.col_off), int(window.height), int(window.width)
    rows, cols = slice(y0, y0 + h), slice(x0, x0 + w)
    band_keys: list = [np.array(positions, dtype=np.int64)]  # a list of bands, as xarray passes it
    if positions == list(range(positions[0], positions[0] + len(positions))):
        band_keys.append(slice(positions[0], positions[0] + len(positions)))  # a range of bands
    if data.name == opened.name:  # the open itself: the whole file, its bands in order
        return positions == list(range(file_shape[0])) and (y0, x0, h, w) == (0, 0, *file_shape[1:])
    try:
        return any(opened[key, rows, cols].name == data.name for key in band_keys)
    except (IndexError, ValueError):
        return False


def _file_window(da: xr.DataArray, theirs, width: int, height: int) -> Window | None:
    """The window of a (width x height) file with geotransform ``theirs`` whose pixels ``da`` (band, y, x) lies
    on: the file's pixel size and orientation, whole-pixel offsets, inside the file, and (where ``da`` has x and y
    coordinates) every column and row of that window in order. None where ``da`` does not line up."""
    _, H, W = da.shape
    mine = _grid_of(da)
    col, row = ~theirs @ (mine.c, mine.f)
    x0, y0 = round(col), round(row)
    lined_up = (np.allclose([mine.a, mine.b, mine.d, mine.e], [theirs.a, theirs.b, theirs.d, theirs.e])
                and abs(col - x0) < 1e-6 and abs(row - y0) < 1e-6
                and 0 <= x0 and x0 + W <= width and 0 <= y0 and y0 + H <= height)
    if lined_up and theirs.is_rectilinear and "x" in da.coords and "y" in da.coords:
        # the coordinates of pixel centres: a fancy selection (x=[3, 4, 9]) has the window's first spacing
        # and origin but not its columns
        x = theirs.c + theirs.a * (x0 + np.arange(W) + 0.5)
        y = theirs.f + theirs.e * (y0 + np.arange(H) + 0.5)
        lined_up = (np.allclose(da.coords["x"].values, x, rtol=0, atol=1e-6 * abs(theirs.a))
                    and np.allclose(da.coords["y"].values, y, rtol=0, atol=1e-6 * abs(theirs.e)))
    return Window(x0, y0, W, H) if lined_up else None


def _grid_of(da: xr.DataArray):
    """``da``'s geotransform: rioxarray's stored one (exact, as the file says) unless the coordinates say
    otherwise, as they do when the array was subsampled (``isel(x=slice(None, None, 2))``: the stored
    transform stays the file's)."""
    stored = da.rio.transform()
    if not stored.is_rectilinear:  # rotated: nothing to recalculate from the coordinates
        return stored
    try:
        computed = da.rio.transform(recalc=True)
    except Exception:  # noqa: BLE001 - one-pixel axes have no spacing to recalculate from
        return stored
    same = np.allclose(tuple(stored)[:6], tuple(computed)[:6], rtol=1e-9, atol=1e-9 * abs(stored.a))
    return stored if same else computed


def _file_mask(da: xr.DataArray, lazy: bool):
    """GDAL's dataset mask of the file ``da`` was opened from, on ``da``'s grid (it may be a window of the
    file), where the file has an alpha band or an internal mask; None otherwise. An array that no longer
    lines up with its file (resampled, flipped) gets a warning instead of a misplaced mask."""
    path = da.encoding.get("source")
    if not path or not hasattr(da, "rio"):
        return None
    with reading_env():
        try:
            src = open_raster(path)
        except RasterIOError:  # the array outlived its file: nothing to read the mask from
            return None
        with src:
            if not any({MaskFlags.per_dataset, MaskFlags.alpha} & set(flags) for flags in src.mask_flag_enums):
                return None
            window = _file_window(da, src.transform, src.width, src.height)
    if window is None:
        warnings.warn(f"segment: {path} has a dataset mask (alpha band or internal mask) that does not line up "
                      "with the array (resampled or flipped?); pass mask= to mask its invalid pixels", stacklevel=3)
        return None
    return lazy_dataset_mask(path, window) if lazy else read_dataset_mask(path, window)


def _scaling_description(scaling, dtype, bands: int, resolved: ResolvedSettings) -> str:
    """The scaling rule in words: the values when they are known without computing the map."""
    if isinstance(scaling, Scaling):  # an in-memory image: decided already
        return scaling.describe()
    fixed = fixed_scaling(dtype, bands, resolved.card.input_range, resolved.settings.scale)
    return fixed.describe() if fixed else "per-band 2-98 % percentiles of a strided sample (computed with the map)"


def _checked_image(da) -> xr.DataArray:
    """The (band, y, x) image of ``da``, whatever the order of its dims, or an InvalidInputError naming
    what is wrong: not a DataArray, no band/y/x dims, an empty array, or a pixel type the models cannot
    take (complex, text, objects)."""
    if not isinstance(da, xr.DataArray):
        raise InvalidInputError(f"segment: expects an xarray.DataArray with dims (band, y, x), got "
                                f"{type(da).__name__}")
    if set(da.dims) != {"band", "y", "x"}:
        raise InvalidInputError(f"segment: expects dims band, y and x (in any order), got {da.dims}; "
                                "rename them (e.g. da.rename(...)) or add a band dim (da.expand_dims('band'))")
    da = da.transpose("band", "y", "x")
    if 0 in da.shape:
        raise InvalidInputError(f"segment: the array is empty ({dict(da.sizes)})")
    kind = np.dtype(da.dtype).kind
    if kind == "c":
        raise InvalidInputError(f"segment: complex pixels ({da.dtype}) are not supported; convert them to "
                                "amplitude or intensity first (e.g. abs(da))")
    if kind not in "biuf":
        raise InvalidInputError(f"segment: pixels of type {da.dtype} are not numbers")
    return da


def _scheduler_threads() -> int:
    """Threads that will compute the graph: a ``dask.distributed`` client's workers if one is active,
    else the local scheduler's pool (the number of cores)."""
    try:
        from distributed import get_client

        workers = get_client().scheduler_info(n_workers=-1)["workers"]
        return max(1, sum(w["nthreads"] for w in workers.values()))
    except (ImportError, ValueError):
        import os

        return os.cpu_count() or 1
