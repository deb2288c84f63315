"""Reading class maps (ours or any one-band integer raster): class names, the one-band integer check
and the ground area of pixels. Used by info, preview, stac and vectorize alike."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import rasterio
from pyproj import Geod

from ..errors import InvalidInputError

_WGS84 = Geod(ellps="WGS84")

# What map readers expect a class to look like (QGIS styles, ESA WorldCover, Dynamic World): the first
# keyword found in a class name gives its display colour. Datasets' annotation colours are for decoding
# masks, not for drawing maps (Dubai's water is orange).
CONVENTIONAL_COLOURS = (
    (("water", "sea", "river", "lake", "ocean"), (30, 110, 220)),
    (("vegetation", "forest", "tree", "grass", "crop", "vineyard", "shrub", "green"), (40, 150, 50)),
    (("building", "built", "urban", "roof", "settlement"), (210, 40, 40)),
    (("road", "impervious", "paved", "street", "parking"), (128, 128, 128)),
    (("land", "bare", "soil", "sand", "rock", "desert"), (225, 200, 140)),
    (("snow", "ice", "glacier"), (240, 240, 250)),
    (("cloud",), (200, 220, 240)),
    (("wetland", "marsh", "mangrove"), (0, 150, 160)),
)


def display_colour(name: str, fallback: tuple[int, int, int]) -> tuple[int, int, int]:
    """The conventional colour of a class called ``name`` (water blue, vegetation green, buildings red,
    roads grey, bare land sand), else ``fallback``."""
    words = re.findall(r"[a-z]+", name.lower())
    for keywords, colour in CONVENTIONAL_COLOURS:
        if any(word.startswith(k) for k in keywords for word in words):
            return colour
    return fallback


def class_names_for(src: rasterio.DatasetReader, classes_file: str | Path | None = None) -> dict[int, str]:
    """Class names: ``--classes`` JSON ({"id": "name"} or a class table with "classes"), our
    LALE_GEO_CLASSES tag, a WorldCover-style "legend" tag, or the band's category names."""
    if classes_file is not None:
        return read_class_names(classes_file)
    tags = src.tags()
    if "LALE_GEO_CLASSES" in tags:
        return dict(enumerate(json.loads(tags["LALE_GEO_CLASSES"])))
    if "legend" in tags:
        pairs = re.findall(r"^\s*(\d+)\s+(.+?)\s*$", tags["legend"], flags=re.MULTILINE)
        if pairs:
            return {int(k): v for k, v in pairs}
    return {}


def class_colours_for(src: rasterio.DatasetReader) -> dict[int, tuple[int, ...]]:
    """{id: (r, g, b, ...)} from the map's colour table, else from our LALE_GEO_COLOURS tag (a map that
    ``segment()`` made and ``rio.to_raster`` wrote has tags but no colour table); {} without either."""
    try:
        return src.colormap(1)
    except ValueError:  # no colour table
        pass
    try:
        return {i: tuple(int(v) for v in c) for i, c in enumerate(json.loads(src.tags().get("LALE_GEO_COLOURS", "[]")))}
    except (ValueError, TypeError):
        return {}


def read_class_names(path: str | Path) -> dict[int, str]:
    """{id: name} from a ``--classes`` JSON file: {"1": "Tree", ...} or a class table
    ({"classes": [{"id" or "value": 1, "name": "Tree"}, ...]}).

    Raises:
        InvalidInputError: unreadable or not JSON, another shape, or ids that are not integers.
    """
    expected = 'expected {"1": "Tree", ...} or a class table {"classes": [{"id": 1, "name": "Tree"}, ...]}'
    try:
        data = json.loads(Path(path).read_text())
    except OSError as e:
        raise InvalidInputError(f"{path}: cannot read the class names ({e.strerror or e})") from None
    except ValueError as e:  # JSONDecodeError, and UnicodeDecodeError for a binary file
        raise InvalidInputError(f"{path}: class names are not valid JSON ({e}); {expected}") from None
    try:
        if isinstance(data, dict) and "classes" in data:
            return {_class_id(c.get("value", c["id"])): str(c["name"]) for c in data["classes"]}
        if isinstance(data, dict):
            return {_class_id(k): str(v) for k, v in data.items()}
    except (TypeError, KeyError, AttributeError, ValueError) as e:
        raise InvalidInputError(f"{path}: bad class names ({type(e).__name__}: {e}); {expected}") from None
    raise InvalidInputError(f"{path}: class names must be a JSON object, not {type(data).__name__}; {expected}")


def _class_id(key) -> int:
    """A class id from JSON: an integer, or a string holding one ("3", "-1"); not 1.5, "a" or true."""
    if isinstance(key, bool) or not isinstance(key, (int, str)) or not re.fullmatch(r"-?\d+", str(key).strip()):
        raise ValueError(f"class id {key!r} is not an integer")
    return int(key)


def check_class_raster(src: rasterio.DatasetReader) -> None:
    """Refuse what is not a class map: more than one band, non-integer values, a rotated grid."""
    if src.count != 1:
        raise InvalidInputError(f"{src.name}: {src.count} bands; expected one band of class ids")
    if not np.issubdtype(np.dtype(src.dtypes[0]), np.integer):
        raise InvalidInputError(f"{src.name}: {src.dtypes[0]} values; expected one band of integer "
                                "class ids (e.g. the output of lale-geo predict)")
    t = src.transform
    if t.b != 0 or t.d != 0:
        raise InvalidInputError(f"{src.name}: rotated or sheared geotransform is not supported")


def pixel_area_m2(src: rasterio.DatasetReader, row: int = 0) -> float:
    """Ground area (m2) of a pixel of ``row``: the same in every row of a projected CRS, by latitude in a
    geographic one (the geodesic area of the cell on WGS 84); NaN without a CRS."""
    t = src.transform
    if src.crs is None:
        return float("nan")
    if src.crs.is_projected:
        return abs(t.a * t.e) * src.crs.linear_units_factor[1] ** 2
    top = t.f + row * t.e
    return abs(_WGS84.polygon_area_perimeter([t.c, t.c + t.a, t.c + t.a, t.c], [top, top, top + t.e, top + t.e])[0])


def row_pixel_areas_m2(src: rasterio.DatasetReader) -> np.ndarray:
    """:func:`pixel_area_m2` of every row."""
    if src.crs is None or src.crs.is_projected:
        return np.full(src.height, pixel_area_m2(src))
    return np.array([pixel_area_m2(src, row) for row in range(src.height)])
