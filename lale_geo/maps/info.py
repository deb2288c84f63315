"""What a class raster holds: classes, colours, pixel counts and areas per class, and provenance."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.windows import Window

from ..errors import InvalidInputError
from ..io.classmap import class_colours_for, class_names_for, row_pixel_areas_m2
from ..io.raster import checked_read, open_raster


@dataclass(frozen=True)
class ClassArea:
    """One class present in a map: its colour, pixels, ground area and share of the valid pixels."""

    id: int
    name: str
    colour: tuple[int, int, int]
    pixels: int
    area_m2: float
    share: float

    @property
    def area_ha(self) -> float:
        return self.area_m2 / 1e4


@dataclass(frozen=True)
class RasterInfo:
    """What a class map holds (:func:`raster_info`); :meth:`to_dict` is the JSON form ``info --json`` prints."""

    path: str
    width: int
    height: int
    crs: str | None
    nodata: int | None
    nodata_pixels: int
    classes: list[ClassArea]
    provenance: dict[str, Any]  # the LALE_GEO_* tags, lower case without the prefix (classes decoded)

    def to_dict(self) -> dict:
        data = asdict(self)
        for entry, c in zip(data["classes"], self.classes):
            entry["area_ha"] = c.area_ha
        return data


def raster_info(path: str | Path, classes_file: str | Path | None = None, block_rows: int = 1024) -> RasterInfo:
    """Classes present with colour, pixel count, area (m2 and ha) and share, plus the provenance tags."""
    with open_raster(path) as src:
        if src.count != 1 or not np.issubdtype(np.dtype(src.dtypes[0]), np.integer):
            raise InvalidInputError(f"{path}: expected one band of integer class ids")
        names = class_names_for(src, classes_file)
        colormap = class_colours_for(src)
        counts, areas = class_counts(src, row_pixel_areas_m2(src), block_rows)
        tags = src.tags()
        nodata = None if src.nodata is None else int(src.nodata)
        nodata_pixels = 0 if nodata is None else counts.get(nodata, 0)
        total = sum(counts.values()) - nodata_pixels
        classes = [ClassArea(id=v, name=names.get(v, f"class {v}"),
                             colour=_rgb(colormap.get(v, (0, 0, 0, 0))),
                             pixels=counts[v], area_m2=areas[v], share=counts[v] / total if total else 0.0)
                   for v in sorted(counts) if v != nodata]
        return RasterInfo(
            path=str(path), width=src.width, height=src.height, crs=src.crs.to_string() if src.crs else None,
            nodata=nodata, nodata_pixels=nodata_pixels, classes=classes,
            provenance={k.removeprefix("LALE_GEO_").lower(): (json.loads(v) if k == "LALE_GEO_CLASSES" else v)
                        for k, v in tags.items() if k.startswith("LALE_GEO_")})


def _rgb(colour) -> tuple[int, int, int]:
    return int(colour[0]), int(colour[1]), int(colour[2])


def class_counts(src, pixel_area: np.ndarray, block_rows: int = 1024) -> tuple[dict[int, int], dict[int, float]]:
    """Pixels and ground area (m2) per class id present, read block by block. Memory follows the classes
    present, not the range of the type: a uint32 map would need 2^32 counters, and negative ids cannot
    index a bincount."""
    counts: dict[int, int] = {}
    areas: dict[int, float] = {}
    for y in range(0, src.height, block_rows):
        window = Window(0, y, src.width, min(block_rows, src.height - y))
        with checked_read(src, window):
            rows = src.read(1, window=window)
        row_area = pixel_area[y:y + rows.shape[0]]
        for value, count, area in zip(*_block_counts(rows, row_area)):
            counts[value] = counts.get(value, 0) + int(count)
            areas[value] = areas.get(value, 0.0) + float(area)
    if src.height and np.all(pixel_area == pixel_area[0]):  # projected: exact count x area, no summed rounding
        areas = {value: count * float(pixel_area[0]) for value, count in counts.items()}
    return counts, areas


def _block_counts(rows: np.ndarray, row_area: np.ndarray) -> tuple[list[int], np.ndarray, np.ndarray]:
    """(values, pixel counts, areas) of the ids in a block of rows; each row's pixels weigh its area
    (constant in projected CRSs, by latitude in geographic ones)."""
    index: np.ndarray
    offset: int | None
    if rows.dtype.itemsize <= 2:  # 8/16-bit: a bincount over the type's whole range is small and fast
        offset = int(np.iinfo(rows.dtype).min)
        index = rows.astype(np.int32) - offset
        size = int(np.iinfo(rows.dtype).max) - offset + 1
    else:  # 32/64-bit: number the distinct ids of the block instead
        uniques, inverse = np.unique(rows, return_inverse=True)
        index, size, offset = inverse.reshape(rows.shape), len(uniques), None
    counts = np.bincount(index.ravel(), minlength=size)
    weights = np.broadcast_to(row_area[:, None], rows.shape).ravel()
    areas = np.bincount(index.ravel(), weights=weights, minlength=size)
    present = np.nonzero(counts)[0]
    values = [int(v) + offset for v in present] if offset is not None else [int(uniques[i]) for i in present]
    return values, counts[present], areas[present]
