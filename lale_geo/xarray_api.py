"""``segment(da)``: the prediction engine for xarray/Dask users, lazy and georeferenced.

The scene is cut into output blocks; each block runs every grid tile that meets it (tiles are
weighted exactly as in ``lale-geo predict``, so blocks computed anywhere agree with the streamed map).
Dask input stays lazy; on a ``dask.distributed`` cluster the model is loaded once per worker process.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import dask
import dask.array as dsa
import numpy as np
import xarray as xr
from torch import nn

from .errors import InvalidInputError
from .inference import TilePredictor
from .io import OUTPUT_NODATA, fixed_scaling, percentile_scaling
from .pipeline import predict_region, resolve_tiling
from .stitching import labels_and_confidence, softmax
from .tiling import TileGrid
from .weights import DEFAULT_WEIGHTS, WeightsCard, load_weights


@lru_cache(maxsize=4)
def _cached_predictor(weights: str, device: str) -> TilePredictor:
    """One predictor per process and weights: Dask tasks on a worker reuse it."""
    model, card = load_weights(weights)
    return TilePredictor(model, card.mean, card.std, device)


def _valid_mask(pixels: np.ndarray, nodata) -> np.ndarray:
    """A pixel is valid where any band differs from nodata (GDAL's rule) and every band is finite."""
    valid = np.ones(pixels.shape[1:], bool)
    if nodata is not None and not (isinstance(nodata, float) and np.isnan(nodata)):
        valid = (pixels != nodata).any(axis=0)
    if np.issubdtype(pixels.dtype, np.floating):
        valid &= np.isfinite(pixels).all(axis=0)
    return valid


def _scene_scale(pixels: np.ndarray, nodata, card: WeightsCard, scale) -> tuple[np.ndarray, np.ndarray]:
    """Per-band (low, high), by the same rule as ``lale-geo predict`` (from a decimated sample)."""
    n = pixels.shape[0]
    scaling = fixed_scaling(pixels.dtype, n, card.input_range, scale)
    if scaling is None:
        valid = _valid_mask(pixels, nodata)
        scaling = percentile_scaling(list(pixels[:, valid]), "a strided sample")
    return np.asarray(scaling.low), np.asarray(scaling.high)


def _segment_block(pixels, scale, mask=None, *, source, device, mean, grid, region, origin, nodata, batch_size,
                   output):
    """Classes or probabilities of one output block (runs in a Dask task)."""
    if isinstance(source, str):
        predictor = _cached_predictor(source, device)
    else:
        model, card = source
        predictor = TilePredictor(model, card.mean, card.std, device)
    lo, hi = scale
    fill = [lo_b + m * (hi_b - lo_b) for lo_b, hi_b, m in zip(lo, hi, mean)]
    valid = _valid_mask(pixels, nodata)
    if mask is not None:
        valid &= np.asarray(mask, bool)
    logits = predict_region(predictor, pixels.astype(np.float32), valid, origin, grid, region, (lo, hi), fill,
                            batch_size)
    ry, rx, rh, rw = region
    core_valid = valid[ry - origin[0]:ry - origin[0] + rh, rx - origin[1]:rx - origin[1] + rw]
    if output == "logits":
        return logits
    if output == "probabilities":
        probs = softmax(logits)
        probs[:, ~core_valid] = np.nan
        return probs
    labels, _ = labels_and_confidence(logits)
    labels[~core_valid] = OUTPUT_NODATA
    return labels


def segment(da: xr.DataArray, weights: str | None = None, *, model: tuple[nn.Module, WeightsCard] | None = None,
            bands: Sequence[int] | None = None, scale: tuple[float, float] | None = None,
            tile_size: int | None = None, overlap: int | None = None, batch_size: int = 8,
            device: str = "auto", probabilities: bool = False, block_size: int = 2048,
            mask: xr.DataArray | np.ndarray | None = None) -> xr.DataArray:
    """Land-cover classes (or per-class probabilities) of a (band, y, x) DataArray.

    Args:
        da: image with dims (band, y, x), e.g. from ``rioxarray.open_rasterio(path, chunks=True)``.
        weights: shipped weights name or path (default: the shipped default weights).
        model: an explicit (model, card) pair instead of ``weights`` (e.g. ``random_weights()``).
        bands: 1-based positions along ``band`` in the weights' order (default: all, if they match).
        scale: raw (min, max) mapped to [0, 1], numbers or one per band; default as ``lale-geo predict``
            decides it per scene.
        tile_size, overlap, batch_size, device: as for ``lale-geo predict``.
        probabilities: return (class, y, x) float32 probabilities (NaN on nodata) instead of class ids.
        block_size: output block edge in pixels (Dask chunk size of the result).
        mask: optional (y, x) validity (True = valid), e.g. from an alpha band or a GDAL mask; nodata
            values and NaN are always masked.

    Returns:
        uint8 class ids (nodata 255) with the input's y/x coordinates, CRS and transform and attrs
        ``class_names``, ``class_colours``, ``_FillValue``; lazy when ``da`` is Dask-backed.

    Example:
        >>> da = rioxarray.open_rasterio("scene.tif", chunks=True)
        >>> classes = lale_geo.segment(da)          # lazy
        >>> classes.rio.to_raster("landcover.tif")  # computes
    """
    return segment_as(da, "probabilities" if probabilities else "classes", weights, model=model, bands=bands,
                      scale=scale, tile_size=tile_size, overlap=overlap, batch_size=batch_size, device=device,
                      block_size=block_size, mask=mask)


def segment_as(da: xr.DataArray, output: str, weights: str | None = None, *,
               model: tuple[nn.Module, WeightsCard] | None = None, bands: Sequence[int] | None = None,
               scale=None, tile_size: int | None = None, overlap: int | None = None, batch_size: int = 8,
               device: str = "auto", block_size: int = 2048, mask=None) -> xr.DataArray:
    """``segment`` with the output chosen by name: "classes", "probabilities" or "logits" (float32,
    classes first, not masked; what ``lale-geo predict --scheduler`` streams to its writers)."""
    if output not in ("classes", "probabilities", "logits"):
        raise ValueError(f"unknown output {output!r}")
    if da.ndim != 3 or da.dims[0] != "band":
        raise InvalidInputError(f"segment expects dims (band, y, x), got {da.dims}")
    if model is not None:
        net, card = model
        source = model
    else:
        source = str(weights or DEFAULT_WEIGHTS)
        net, card = load_weights(source)
    if bands is not None:
        da = da.isel(band=[b - 1 for b in bands])
    if da.sizes["band"] != len(card.bands):
        raise InvalidInputError(f"segment: {da.sizes['band']} band(s), the weights need {len(card.bands)} "
                                f"({', '.join(card.bands)}); pick them with bands=[...]")
    tile_size, overlap = resolve_tiling(net, card, tile_size, overlap)
    _, H, W = da.shape
    grid = TileGrid(H, W, tile_size, overlap)
    nodata = da.rio.nodata if hasattr(da, "rio") else da.attrs.get("_FillValue")
    data = da.data
    lazy = isinstance(data, dsa.Array)
    mask_data = None if mask is None else getattr(mask, "data", mask)
    if mask_data is not None and tuple(mask_data.shape) != (H, W):
        raise InvalidInputError(f"segment: mask shape {tuple(mask_data.shape)} differs from the image's {(H, W)}")
    if mask_data is not None and not lazy:
        mask_data = np.asarray(mask_data)

    step = max(1, -(-max(H, W) // 1024))  # a ~1024 px sample decides the scaling, once per scene
    if lazy:
        scale_value = dask.delayed(_scene_scale)(data[:, ::step, ::step], nodata, card, scale)
    else:
        data = np.asarray(data)
        scale_value = _scene_scale(data[:, ::step, ::step], nodata, card, scale)

    if lazy and not isinstance(source, str):
        source = dask.delayed(source)  # ship an in-memory model once, not once per block
    common = dict(source=source, device=device, mean=card.mean, grid=grid, nodata=nodata,
                  batch_size=batch_size, output=output)
    per_class = output != "classes"
    out_dtype = np.float32 if per_class else np.uint8
    lead = (card.num_classes,) if per_class else ()

    def block(y0: int, x0: int, h: int, w: int):
        ey0, ex0 = max(y0 - tile_size, 0), max(x0 - tile_size, 0)
        ey1, ex1 = min(y0 + h + tile_size, H), min(x0 + w + tile_size, W)
        kwargs = dict(common, region=(y0, x0, h, w), origin=(ey0, ex0))
        cut = data[:, ey0:ey1, ex0:ex1]
        mask_cut = None if mask_data is None else mask_data[ey0:ey1, ex0:ex1]
        if not lazy:
            return _segment_block(cut, scale_value, mask_cut, **kwargs)
        task = dask.delayed(_segment_block)(cut, scale_value, mask_cut, **kwargs)
        return dsa.from_delayed(task, shape=lead + (h, w), dtype=out_dtype)

    ys = list(range(0, H, block_size))
    xs = list(range(0, W, block_size))
    rows = [[block(y, x, min(block_size, H - y), min(block_size, W - x)) for x in xs] for y in ys]
    xp = dsa if lazy else np
    result = xp.concatenate([xp.concatenate(row, axis=-1) for row in rows], axis=-2)

    dims = ("class", "y", "x") if per_class else ("y", "x")
    coords = {k: v for k, v in da.coords.items() if set(v.dims) <= {"y", "x"}}
    if per_class:
        coords["class"] = card.class_names
    out = xr.DataArray(result, dims=dims, coords=coords, name={"classes": "land_cover"}.get(output, output))
    out.attrs.update(class_names=card.class_names, class_colours=[list(c.colour) for c in card.classes],
                     weights=card.name, weights_sha256=card.sha256, tile_size=tile_size, overlap=overlap)
    if not per_class:
        out.attrs["_FillValue"] = OUTPUT_NODATA
    if hasattr(da, "rio") and da.rio.crs is not None:
        out = out.rio.write_crs(da.rio.crs)
    if hasattr(da, "rio"):
        out = out.rio.write_transform(da.rio.transform())
    return out
