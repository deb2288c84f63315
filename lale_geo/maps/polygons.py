"""Class raster -> land-cover polygons: sieve in raster space, polygonize by blocks, merge the pieces
of a patch that cross block edges, optionally simplify as a coverage, areas in square metres (writing them
to a file is :mod:`lale_geo.maps.vector_files`).

Pieces are traced in pixel coordinates (exact integers, so merges are exact) and moved to map
coordinates when they are final. Memory is bounded by the block size and the pieces touching the
current row of block edges, not by the raster size.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
import rasterio.features
import shapely
from rasterio.windows import Window
from shapely.geometry import shape

from ..errors import InvalidInputError
from ..io.classmap import check_class_raster, class_names_for, pixel_area_m2
from ..io.raster import checked_read, open_raster

EQUAL_AREA_CRS = "EPSG:6933"  # cylindrical equal-area: pixel-grid edges stay straight, areas exact


@dataclass
class VectorizeSummary:
    polygons_per_class: dict[str, int] = field(default_factory=dict)
    area_per_class_m2: dict[str, float] = field(default_factory=dict)
    output: Path | None = None

    @property
    def polygons(self) -> int:
        return sum(self.polygons_per_class.values())

    def add(self, frame: gpd.GeoDataFrame) -> None:
        """Count the polygons and areas of ``frame`` in, by class name (sorted)."""
        for name, group in frame.groupby("class_name", sort=True):
            self.polygons_per_class[str(name)] = self.polygons_per_class.get(str(name), 0) + len(group)
            self.area_per_class_m2[str(name)] = self.area_per_class_m2.get(str(name), 0.0) + float(
                group["area_m2"].sum())
        self.polygons_per_class = dict(sorted(self.polygons_per_class.items()))
        self.area_per_class_m2 = dict(sorted(self.area_per_class_m2.items()))


def _blocks(height: int, width: int, size: int) -> Iterator[tuple[int, list[Window]]]:
    for y0 in range(0, height, size):
        yield y0, [Window(x0, y0, min(size, width - x0), min(size, height - y0)) for x0 in range(0, width, size)]


def _sieved_block(src, window: Window, threshold: int, connectivity: int, nodata) -> np.ndarray:
    """The block's labels after sieving, computed on the block plus a halo of ``threshold`` pixels:
    a patch that reaches the core from outside crosses the halo and so counts at least ``threshold``
    pixels there, so it is never removed by mistake."""
    halo = threshold + 1
    outer = Window(max(window.col_off - halo, 0), max(window.row_off - halo, 0), 0, 0)
    outer = Window(outer.col_off, outer.row_off,
                   min(window.col_off + window.width + halo, src.width) - outer.col_off,
                   min(window.row_off + window.height + halo, src.height) - outer.row_off)
    with checked_read(src, outer):
        labels = src.read(1, window=outer)
    mask = labels != nodata if nodata is not None else None
    # GDAL's sieve is one pass: a small patch whose neighbours are small too survives it; repeat.
    sieved = labels
    for _ in range(10):
        again = rasterio.features.sieve(sieved, threshold, connectivity=connectivity, mask=mask)
        if np.array_equal(again, sieved):
            break
        sieved = again
    if mask is not None:
        sieved = np.where(mask, sieved, labels)
    y, x = int(window.row_off - outer.row_off), int(window.col_off - outer.col_off)
    return sieved[y:y + int(window.height), x:x + int(window.width)]


class _PendingPieces:
    """Pieces of patches that touch a block edge, grouped and merged as their neighbours arrive."""

    def __init__(self, connectivity: int) -> None:
        self.pieces: list[tuple[int, shapely.Geometry]] = []
        self.connectivity = connectivity

    def add(self, value: int, geom: shapely.Geometry) -> None:
        self.pieces.append((value, geom))

    def release(self, open_below: float | None) -> Iterator[tuple[int, shapely.Geometry]]:
        """Merge touching same-class pieces; yield merged patches that cannot grow any more (none of
        their pieces reaches row ``open_below``); keep the rest, merged, for the next block row."""
        if not self.pieces:
            return
        geoms = [g for _, g in self.pieces]
        values = np.array([v for v, _ in self.pieces])
        parent = list(range(len(geoms)))

        def root(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        tree = shapely.STRtree(geoms)
        left, right = tree.query(geoms, predicate="touches")
        for i, j in zip(left, right):
            if i < j and values[i] == values[j]:
                shared = shapely.intersection(geoms[i], geoms[j])
                if self.connectivity == 8 or shared.length > 0:
                    parent[root(i)] = root(j)
        groups: dict[int, list[int]] = {}
        for i in range(len(geoms)):
            groups.setdefault(root(i), []).append(i)
        kept = []
        for members in groups.values():
            merged = geoms[members[0]] if len(members) == 1 else shapely.union_all([geoms[i] for i in members])
            value = int(values[members[0]])
            if open_below is not None and shapely.bounds(merged)[3] >= open_below:
                kept.append((value, merged))
            else:
                yield value, merged
        self.pieces = kept


def iter_polygons(src: rasterio.DatasetReader, *, block_size: int = 2048, connectivity: int = 4,
                  min_pixels: int = 0, classes_only: Sequence[int] | None = None,
                  progress: Callable[[int], None] | None = None) -> Iterator[tuple[int, shapely.Geometry]]:
    """(class value, polygon in pixel coordinates) of every patch, each exactly once, block by block."""
    nodata = src.nodata
    keep = None if classes_only is None else np.asarray(sorted(classes_only))
    pending = _PendingPieces(connectivity)
    for y0, windows in _blocks(src.height, src.width, block_size):
        for window in windows:
            if min_pixels > 1:
                labels = _sieved_block(src, window, min_pixels, connectivity, nodata)
            else:
                with checked_read(src, window):
                    labels = src.read(1, window=window)
            valid = np.ones(labels.shape, bool) if nodata is None else labels != nodata
            if keep is not None:
                valid &= np.isin(labels, keep)
            if not valid.any():
                continue
            offset = rasterio.Affine.translation(window.col_off, window.row_off)
            x0, y0w = window.col_off, window.row_off
            x1, y1 = x0 + window.width, y0w + window.height
            for geom, value in rasterio.features.shapes(labels, mask=valid, connectivity=connectivity,
                                                        transform=offset):
                polygon = shape(geom)
                minx, miny, maxx, maxy = polygon.bounds
                on_edge = (minx == x0 and x0 > 0) or (maxx == x1 and x1 < src.width) or \
                          (miny == y0w and y0w > 0) or (maxy == y1 and y1 < src.height)
                if on_edge:
                    pending.add(int(value), polygon)
                else:
                    yield int(value), polygon
            if progress:
                progress(1)
        row_end = min(y0 + block_size, src.height)
        yield from pending.release(open_below=row_end if row_end < src.height else None)
    yield from pending.release(open_below=None)


def _to_map(geoms: Sequence[shapely.Geometry], transform: rasterio.Affine) -> np.ndarray:
    """Pixel -> map coordinates. Edges are first split at every pixel corner, so that the edge two
    neighbours share has the same vertices on both sides (T-junctions included): a valid coverage,
    which coverage simplification needs."""
    a, b, c, d, e, f = transform.a, transform.b, transform.c, transform.d, transform.e, transform.f
    geoms = shapely.segmentize(np.asarray(geoms, dtype=object), 1.0)
    return shapely.transform(geoms,
                             lambda xy: np.column_stack([a * xy[:, 0] + b * xy[:, 1] + c,
                                                         d * xy[:, 0] + e * xy[:, 1] + f]))


def areas_m2(geoms: gpd.GeoSeries) -> np.ndarray:
    """Areas in square metres: planar in projected CRSs (times the unit's size), equal-area otherwise."""
    crs = geoms.crs
    if crs is None:
        return np.full(len(geoms), np.nan)
    if crs.is_geographic:
        return geoms.to_crs(EQUAL_AREA_CRS).area.to_numpy()
    factor = crs.axis_info[0].unit_conversion_factor if crs.axis_info else 1.0
    return geoms.area.to_numpy() * factor**2


def vectorize(src: str | Path, *, block_size: int = 2048, connectivity: int = 4, min_pixels: int = 0,
              min_area: float | None = None, simplify: float | None = None,
              classes_only: Sequence[int] | None = None, classes_file: str | Path | None = None,
              progress: Callable[[int], None] | None = None) -> gpd.GeoDataFrame:
    """Polygons of a single-band class raster, one per connected patch.

    Args:
        src: a class raster (one band of integer class ids; nodata is never polygonized).
        block_size: pixels per block edge; the result does not depend on it.
        connectivity: 4 or 8.
        min_pixels / min_area: patches smaller than this (pixels / m2) are merged into their
            neighbours in raster space first (``rasterio.features.sieve``).
        simplify: tolerance in CRS units; shared edges are simplified once (coverage simplification),
            so neighbours stay exactly adjacent. Needs all polygons in memory.
        classes_only: keep only these class ids.
        classes_file: JSON with class names (otherwise from the raster's metadata).

    Returns:
        GeoDataFrame with class_id, class_name, area_m2, source and geometry, in the raster's CRS.

    Example:
        >>> polygons = vectorize("landcover.tif", min_area=500, simplify=1.0)
    """
    frames = list(iter_frames(src, block_size=block_size, connectivity=connectivity, min_pixels=min_pixels,
                              min_area=min_area, classes_only=classes_only, classes_file=classes_file,
                              progress=progress))
    frame = frames[0] if len(frames) == 1 else gpd.GeoDataFrame(pd.concat(frames, ignore_index=True),
                                                                crs=frames[0].crs)
    if simplify and not frame.empty:
        frame["geometry"] = shapely.coverage_simplify(frame.geometry.to_numpy(), simplify,
                                                      simplify_boundary=False)
        frame["area_m2"] = areas_m2(frame.geometry)  # areas of what is written
    if frame.empty:
        warnings.warn(f"{src}: no polygons (all nodata or no selected class); the layer is empty", stacklevel=2)
    return frame


def iter_frames(src: str | Path, *, chunk_size: int | None = None, block_size: int = 2048, connectivity: int = 4,
                min_pixels: int = 0, min_area: float | None = None, classes_only: Sequence[int] | None = None,
                classes_file: str | Path | None = None,
                progress: Callable[[int], None] | None = None) -> Generator[gpd.GeoDataFrame, None, None]:
    """Final polygons (not simplified) in GeoDataFrames of at most ``chunk_size`` rows (all in one when
    None); always yields at least one frame, empty when there is nothing to polygonize."""
    if connectivity not in (4, 8):
        raise InvalidInputError(f"connectivity must be 4 or 8, got {connectivity}")
    # Blocks are read once, a row at a time: GDAL's default cache (5 % of RAM) would only hoard them.
    with rasterio.Env(GDAL_CACHEMAX=32 << 20), open_raster(src) as dataset:
        check_class_raster(dataset)
        threshold = _sieve_threshold(dataset, min_pixels, min_area)
        names = class_names_for(dataset, classes_file)
        values, geoms, emitted = [], [], False
        for value, geom in iter_polygons(dataset, block_size=block_size, connectivity=connectivity,
                                         min_pixels=threshold, classes_only=classes_only, progress=progress):
            values.append(value)
            geoms.append(geom)
            if chunk_size and len(values) >= chunk_size:
                yield _frame(values, _to_map(geoms, dataset.transform), dataset.crs, names, Path(src).name)
                values, geoms, emitted = [], [], True
        if values or not emitted:
            yield _frame(values, _to_map(geoms, dataset.transform), dataset.crs, names, Path(src).name)


def _frame(values, geoms, crs, names: dict[int, str], source: str) -> gpd.GeoDataFrame:
    series = gpd.GeoSeries(list(geoms), crs=crs)
    ids = np.asarray(values, np.int64)
    frame = gpd.GeoDataFrame({
        "class_id": ids,
        "class_name": [names.get(int(v), f"class {v}") for v in ids],
        "area_m2": areas_m2(series) if len(series) else np.zeros(0),
        "source": [source] * len(ids),
    }, geometry=series, crs=crs)
    return frame


def _sieve_threshold(src: rasterio.DatasetReader, min_pixels: int, min_area: float | None) -> int:
    if min_area is None:
        return min_pixels
    if src.crs is None:
        raise InvalidInputError(f"{src.name}: min_area= needs a CRS; use min_pixels=")
    pixel = pixel_area_m2(src, src.height // 2)  # the middle row's, in a geographic CRS
    return max(min_pixels, int(np.ceil(min_area / pixel)))


def summarise(frame: gpd.GeoDataFrame, output: Path | None = None) -> VectorizeSummary:
    summary = VectorizeSummary(output=output)
    summary.add(frame)
    return summary


_MOVED_TO_VECTOR_FILES = ("FORMATS", "check_vector_output", "vectorize_to_file", "verify_layer", "write_layer")


def __getattr__(name: str):
    """The names that moved to :mod:`lale_geo.maps.vector_files` still import from here for one release, with
    a DeprecationWarning (looked up by name on first use: the two modules do not import each other)."""
    if name in _MOVED_TO_VECTOR_FILES:
        import importlib
        import warnings

        warnings.warn(f"lale_geo.maps.polygons.{name} moved to lale_geo.maps.vector_files.{name}",
                      DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module("lale_geo.maps.vector_files"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
