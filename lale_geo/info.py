"""What a class raster holds: classes, colours, pixel counts and areas per class, and provenance."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from rasterio.windows import Window

from .classmap import class_names_for, row_pixel_areas_m2
from .errors import InvalidInputError
from .raster import open_raster


def raster_info(path: str | Path, classes_file: str | Path | None = None, block_rows: int = 1024) -> dict:
    """Classes present with colour, pixel count, area (m2 and ha) and share, plus the provenance tags."""
    with open_raster(path) as src:
        if src.count != 1 or not np.issubdtype(np.dtype(src.dtypes[0]), np.integer):
            raise InvalidInputError(f"{path}: expected one band of integer class ids")
        names = class_names_for(src, classes_file)
        try:
            colormap = src.colormap(1)
        except ValueError:
            colormap = {}
        pixel_area = row_pixel_areas_m2(src)
        size = int(np.iinfo(np.dtype(src.dtypes[0])).max) + 1
        counts, areas = np.zeros(size, np.int64), np.zeros(size)
        constant_area = np.all(pixel_area == pixel_area[0])
        for y in range(0, src.height, block_rows):
            rows = src.read(1, window=Window(0, y, src.width, min(block_rows, src.height - y)))
            if constant_area:  # projected CRS: one count per block
                counts += np.bincount(rows.ravel(), minlength=size)
                continue
            for r, row in enumerate(rows):  # geographic: pixel area changes with latitude, row by row
                c = np.bincount(row, minlength=size)
                counts += c
                areas += c * pixel_area[y + r]
        if constant_area:
            areas = counts * pixel_area[0]
        tags = src.tags()
        nodata = None if src.nodata is None else int(src.nodata)
        total = counts.sum() - (counts[nodata] if nodata is not None else 0)
        classes = [{"id": int(v), "name": names.get(int(v), f"class {v}"),
                    "colour": list(colormap.get(int(v), (0, 0, 0, 0))[:3]),
                    "pixels": int(counts[v]), "area_m2": float(areas[v]), "area_ha": float(areas[v] / 1e4),
                    "share": float(counts[v] / total) if total else 0.0}
                   for v in np.nonzero(counts)[0] if v != nodata]
        return {
            "path": str(path), "width": src.width, "height": src.height,
            "crs": src.crs.to_string() if src.crs else None, "nodata": nodata,
            "nodata_pixels": int(counts[nodata]) if nodata is not None else 0,
            "classes": classes,
            "provenance": {k.removeprefix("LALE_GEO_").lower(): (json.loads(v) if k == "LALE_GEO_CLASSES" else v)
                           for k, v in tags.items() if k.startswith("LALE_GEO_")},
        }
