"""ESA WorldCover labels as ARAS400k classes: a labelled map for a new area from a free global product."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from rasterio.windows import Window

from ..errors import DatasetError
from ..files import check_output
from ..io.outputs import OUTPUT_NODATA
from ..io.raster import checked_read, open_raster
from ..io.writers import RasterWriter
from .class_tables import ClassTable, shipped_class_tables

# ESA WorldCover 2021 codes -> ARAS400k class ids (spec/lale.md §6); 0 is WorldCover's nodata.
WORLDCOVER_TO_ARAS400K = {10: 0, 95: 0, 20: 1, 30: 2, 90: 2, 100: 2, 40: 3, 50: 4, 60: 5, 70: 5, 80: 6}


def remap_worldcover(src: str | Path, dst: str | Path, *, overwrite: bool = False, block_rows: int = 1024) -> dict:
    """Write ESA WorldCover labels as ARAS400k classes (uint8 COG, nodata 255, ARAS400k colours and class
    names), block by block. Returns the pixel count per ARAS400k class name.

    Example:
        >>> remap_worldcover("ESA_WorldCover_10m_2021_v200_N00E006_Map.tif", "aras_labels.tif")
    """
    table = ClassTable.read(shipped_class_tables()["aras400k"])
    lut = np.full(256, OUTPUT_NODATA, np.uint8)
    for code, class_id in WORLDCOVER_TO_ARAS400K.items():
        lut[code] = class_id
    known = set(WORLDCOVER_TO_ARAS400K) | {0}
    check_output(dst, overwrite, inputs=[src])
    counts = np.zeros(256, np.int64)
    with open_raster(src) as labels:
        if labels.count != 1 or labels.dtypes[0] != "uint8":
            raise DatasetError(f"{src}: expected a one-band uint8 WorldCover map")
        profile = {"width": labels.width, "height": labels.height, "crs": labels.crs, "transform": labels.transform,
                   "dtype": "uint8", "nodata": OUTPUT_NODATA, "count": 1}
        colormap = {i: (*c, 255) for i, c in enumerate(table.colours)}
        writer = RasterWriter(dst, profile, colormap=colormap, band_descriptions=["ARAS400k class"],
                              tags={"LALE_GEO_CLASSES": json.dumps(list(table.class_names)),
                                    "SOURCE": f"ESA WorldCover remapped to ARAS400k from {Path(src).name}"})
        try:
            for y in range(0, labels.height, block_rows):
                window = Window(0, y, labels.width, min(block_rows, labels.height - y))
                with checked_read(labels, window):
                    rows = labels.read(1, window=window)
                unknown = set(np.unique(rows).tolist()) - known
                if unknown:
                    raise DatasetError(f"{src}: values {sorted(unknown)} are not WorldCover classes")
                mapped = lut[rows]
                counts += np.bincount(mapped.ravel(), minlength=256)
                writer.write_rows(y, mapped)
            writer.commit()
        except BaseException:
            writer.abort()
            raise
    return {name: int(counts[i]) for i, name in enumerate(table.class_names)}
