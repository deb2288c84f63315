"""A STAC item for a land-cover map: footprint, projection, file and classification extensions.

The item is built from the written files alone (grid, colour table and provenance tags of the map), so
it describes exactly what is on disk. Validation uses pystac: the core schemas ship with pystac; the
extension schemas are fetched once and kept under ``<cache>/stac-schemas/<host>/<path>``, a folder that
can also be filled by hand on machines without internet.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import socket
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import jsonschema
import numpy as np
import pystac
import rasterio
import shapely
from pystac.extensions.classification import Classification, ClassificationExtension
from pystac.extensions.file import FileExtension
from pystac.extensions.projection import ProjectionExtension
from pystac.validation.stac_validator import GetSchemaError, JsonSchemaSTACValidator
from rasterio.warp import transform_geom

from ..cache import cache_dir
from ..checksums import sha256_of
from ..errors import InvalidInputError, LaleGeoError
from ..files import check_output, is_remote, locked_outputs, published
from ..io.classmap import class_colours_for, class_names_for
from ..io.raster import open_raster
from .info import raster_info

MEDIA_TYPES = {
    ".tif": pystac.MediaType.COG, ".tiff": pystac.MediaType.COG,
    ".gpkg": "application/geopackage+sqlite3", ".parquet": "application/vnd.apache.parquet",
    ".fgb": "application/vnd.flatgeobuf", ".geojson": "application/geo+json",
}
CLASSES_ASSET = "landcover"
SCHEMA_FETCH_TIMEOUT_S = 15


def multihash_sha256(path: str | Path) -> str:
    """The file's sha2-256 as a multihash hex string (code 0x12, length 0x20), as file:checksum wants."""
    return "1220" + sha256_of(path)


def machine_name(name: str) -> str:
    """A class name reduced to letters, digits, - and _ (the classification extension's ``name``)."""
    return re.sub(r"[^0-9A-Za-z_-]+", "_", name).strip("_")


def footprint_wgs84(src: rasterio.DatasetReader, points_per_edge: int = 21) -> dict:
    """The raster's extent as a WGS 84 polygon, edges densified so curved outlines stay close."""
    left, bottom, right, top = src.bounds
    edge = max(right - left, top - bottom) / points_per_edge
    outline = shapely.segmentize(shapely.box(left, bottom, right, top), edge)
    wgs84 = transform_geom(src.crs, "EPSG:4326", shapely.geometry.mapping(outline))
    return json.loads(shapely.to_geojson(shapely.geometry.shape(wgs84)))  # lists, not tuples, for JSON Schema


def _file_fields(asset: pystac.Asset, path: Path) -> None:
    files = FileExtension.ext(asset, add_if_missing=True)
    files.size = path.stat().st_size
    files.checksum = multihash_sha256(path)


def _projection_fields(asset: pystac.Asset, src: rasterio.DatasetReader) -> None:
    proj = ProjectionExtension.ext(asset, add_if_missing=True)
    epsg = src.crs.to_epsg() if src.crs else None
    proj.apply(code=f"EPSG:{epsg}" if epsg else None, wkt2=src.crs.to_wkt() if src.crs and not epsg else None,
               shape=[src.height, src.width], transform=list(src.transform)[:6], bbox=list(src.bounds))


def _value_fields(src: rasterio.DatasetReader) -> dict:
    """STAC's nodata (integers as such, NaN as "nan"), data_type and, for percent rasters, unit."""
    fields = {"data_type": src.dtypes[0], "unit": src.tags().get("LALE_GEO_UNITS")}
    if src.nodata is not None:
        nodata = src.nodata
        fields["nodata"] = "nan" if np.isnan(nodata) else int(nodata) if float(nodata).is_integer() else nodata
    return {k: v for k, v in fields.items() if v is not None}


def _classes(src: rasterio.DatasetReader, map_path: str | Path) -> list[Classification]:
    """Every class the map's table names (present or not) with colour, pixel count and share, plus
    the nodata value."""
    names = class_names_for(src)
    if not names:
        raise InvalidInputError(f"{map_path}: no class names in the map's metadata; is it a lale-geo map?")
    colormap = class_colours_for(src)
    present = {c.id: c for c in raster_info(map_path).classes}
    taken: set[str] = set()
    classes = []
    for value, title in sorted(names.items()):
        name = machine_name(title) or f"class_{value}"
        name = name if name not in taken else f"{name}_{value}"
        taken.add(name)
        stats = present.get(value)
        colour = colormap.get(value)
        classes.append(Classification.create(
            value=value, name=name, title=title, count=stats.pixels if stats else 0,
            percentage=100 * stats.share if stats else 0.0,
            color_hint="{:02X}{:02X}{:02X}".format(*colour[:3]) if colour else None))
    if src.nodata is not None:
        classes.append(Classification.create(value=int(src.nodata), name="nodata", title="No data", nodata=True))
    return classes


def stac_item(map_path: str | Path, item_path: str | Path, *, extra_assets: Mapping[str, str | Path] = {},
              datetime: dt.datetime | None = None, item_id: str | None = None) -> pystac.Item:
    """A STAC 1.1 item for the class raster ``map_path`` to be saved at ``item_path``.

    Asset hrefs are relative to the item's folder, so the item and its files move together.
    ``extra_assets`` (key -> path) adds the confidence/probability rasters and polygon layers written
    beside the map. ``datetime`` is the scene's acquisition time when known; without it, the time the
    map was written (``created`` is always that time).
    """
    if CLASSES_ASSET in extra_assets:
        raise InvalidInputError(f"asset key {CLASSES_ASSET!r} is the map itself; name the other file differently")
    # A URL stays a string (Path() would fold its "//"), a local file becomes a Path: below, a str is remote.
    map_path, item_dir = (map_path if is_remote(map_path) else Path(map_path)), Path(item_path).resolve().parent
    stem = PurePosixPath(urlsplit(map_path).path).stem if isinstance(map_path, str) else map_path.stem
    with open_raster(map_path) as src:
        created = dt.datetime.now(dt.timezone.utc) if isinstance(map_path, str) else \
            dt.datetime.fromtimestamp(map_path.stat().st_mtime, dt.timezone.utc)
        if src.crs is None:
            raise InvalidInputError(f"{map_path}: no CRS, so no footprint for a STAC item; "
                                    "predict on a georeferenced scene")
        geometry = footprint_wgs84(src)
        tags = src.tags()
        properties = {
            "created": pystac.utils.datetime_to_str(created),
            "title": f"Land cover of {stem}",
            **{f"lale_geo:{k.removeprefix('LALE_GEO_').lower()}": v for k, v in tags.items()
               if k.startswith("LALE_GEO_") and k != "LALE_GEO_CLASSES"},
        }
        item = pystac.Item(id=item_id or stem, geometry=geometry,
                           bbox=[float(v) for v in shapely.bounds(shapely.geometry.shape(geometry))],
                           datetime=(datetime or created).astimezone(dt.timezone.utc), properties=properties)

        def add(key: str, path: Path | str, title: str, grid: rasterio.DatasetReader | None,
                **fields) -> pystac.Asset:
            # a URL (a str) is linked as is; its size and checksum would mean a download
            if isinstance(path, str):
                suffix, href = PurePosixPath(urlsplit(path).path).suffix, path
            else:
                suffix, href = path.suffix, os.path.relpath(path.resolve(), item_dir)
            asset = pystac.Asset(href=href, title=title, roles=["data"], media_type=MEDIA_TYPES.get(suffix.lower()),
                                 extra_fields=fields)
            item.add_asset(key, asset)
            if grid is not None:
                _projection_fields(asset, grid)
            if isinstance(path, Path):
                _file_fields(asset, path)
            return asset

        classes = add(CLASSES_ASSET, map_path, "Land-cover classes", src, **_value_fields(src))
        ClassificationExtension.ext(classes, add_if_missing=True).classes = _classes(src, map_path)
        for key, path in extra_assets.items():
            path = path if is_remote(path) else Path(path)  # as map_path: a str is remote
            suffix = PurePosixPath(urlsplit(path).path).suffix if isinstance(path, str) else path.suffix
            if suffix.lower() in (".tif", ".tiff"):
                with open_raster(path) as extra:
                    add(key, path, key.capitalize(), extra, **_value_fields(extra))
            elif isinstance(path, str) or path.is_file():
                add(key, path, key.capitalize(), None)
            else:
                raise InvalidInputError(f"{path}: file not found (asset {key!r} of the STAC item)")
    return item


def stac_schema_folder() -> Path:
    """Where extension schemas are kept once fetched (``<host>/<path>`` below it)."""
    return cache_dir() / "stac-schemas"


def _schema_cache_path(folder: Path, uri: str) -> Path:
    return folder / re.sub(r"^https?://", "", uri).split("#")[0]


def validate_item(item: dict, schema_folder: Path | None = None) -> tuple[list[str], list[str]]:
    """Validate a STAC item dict with pystac against the core schema and each extension schema it names.

    Returns the schema URIs validated and the extension schemas that could be neither read from
    ``schema_folder`` nor fetched (not checked). Raises :class:`LaleGeoError` when the item is invalid.
    """
    folder = schema_folder or stac_schema_folder()
    extensions = item.get("stac_extensions", [])
    validator = JsonSchemaSTACValidator()
    for uri in extensions:
        cached = _schema_cache_path(folder, uri)
        if cached.is_file():
            try:
                validator.schema_cache[uri] = json.loads(cached.read_text())
            except (OSError, ValueError) as e:
                raise LaleGeoError(f"{cached}: not a readable JSON schema ({e}); delete it or put the "
                                   f"published {uri} there") from None
    before = set(validator.schema_cache)
    validated, unreachable = [], []
    pystac_log = logging.getLogger("pystac.validation.stac_validator")
    level, pystac_log.level = pystac_log.level, logging.CRITICAL  # it logs a traceback before raising
    # pystac fetches with urllib and no timeout: a network that drops packets would hang the run.
    timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(SCHEMA_FETCH_TIMEOUT_S)
    try:
        validated.append(validator.validate_core(item, pystac.STACObjectType.ITEM, item["stac_version"]))
        for uri in extensions:
            try:
                validated.append(validator.validate_extension(item, pystac.STACObjectType.ITEM,
                                                              item["stac_version"], uri))
            except GetSchemaError:
                unreachable.append(uri)
    except pystac.errors.STACValidationError as e:
        raise LaleGeoError(f"STAC item {item.get('id')!r} is not valid: {_best_error(e)}") from None
    finally:
        pystac_log.setLevel(level)
        socket.setdefaulttimeout(timeout)
    for uri in set(validator.schema_cache) - before:  # fetched now: keep for offline runs
        if uri in extensions:
            _keep_schema(_schema_cache_path(folder, uri), validator.schema_cache[uri])
    return [str(v) for v in validated if v], unreachable


def _keep_schema(path: Path, schema: dict) -> None:
    """Best effort: a cache that cannot be written only means fetching again next time."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with published(path, overwrite=True) as tmp:
            tmp.write_text(json.dumps(schema))
    except OSError as e:
        logging.getLogger(__name__).info("could not keep %s in the schema cache: %s", path, e)


def _leaves(error: jsonschema.ValidationError):
    if not error.context:
        yield error
    for sub in error.context:  # oneOf/anyOf: the errors of each branch
        yield from _leaves(sub)


def _best_error(error: pystac.errors.STACValidationError) -> str:
    """pystac's first line plus the most specific JSON Schema error under it: the one deepest in the
    item, which names the offending field (shallow ones are mostly "wrong oneOf branch")."""
    causes = error.source if isinstance(error.source, list) else [error.source]
    leaves = [leaf for c in causes if isinstance(c, jsonschema.ValidationError) for leaf in _leaves(c)]
    headline = str(error).splitlines()[0]
    if not leaves:
        return headline
    best = max(leaves, key=lambda e: len(e.absolute_path))
    return f"{headline}: {'/'.join(map(str, best.absolute_path)) or 'item'}: {best.message[:200]}"


def write_stac_item(map_path: str | Path, item_path: str | Path, *, overwrite: bool = False,
                    extra_assets: Mapping[str, str | Path] = {}, datetime: dt.datetime | None = None,
                    derived_from: Sequence[str | Path] = ()) -> tuple[pystac.Item, list[str], list[str]]:
    """Build, validate and write (atomically) the STAC item of a map; returns the item, the schemas it
    was validated against and the extension schemas that could not be fetched. ``derived_from``: what the
    map was made from (the scene, its band files or its STAC item), linked as ``derived_from``."""
    item_path = check_output(item_path, overwrite, inputs=[map_path, *extra_assets.values()])
    with locked_outputs([item_path]):  # a second run to the same item fails now, not at publish
        item = stac_item(map_path, item_path, extra_assets=extra_assets, datetime=datetime)
        item_dir = Path(item_path).resolve().parent
        for source in derived_from:
            href = str(source) if is_remote(source) else os.path.relpath(Path(source).resolve(), item_dir)
            suffix = PurePosixPath(urlsplit(str(source)).path).suffix.lower()
            kind = "application/geo+json" if suffix == ".json" else MEDIA_TYPES.get(suffix)
            item.add_link(pystac.Link("derived_from", href, media_type=kind))
        as_dict = item.to_dict(include_self_link=False)
        validated, unreachable = validate_item(as_dict)
        with published(item_path, overwrite) as tmp:
            tmp.write_text(json.dumps(as_dict, indent=2, default=_json_default) + "\n")
    return item, validated, unreachable


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
