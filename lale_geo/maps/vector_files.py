"""Polygons to vector files (GeoPackage, GeoParquet, FlatGeobuf, GeoJSON): streamed to GDAL in Arrow
batches where the format allows, read back before they are published, never over a user's file without
``overwrite``."""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import geopandas as gpd
import pyarrow as pa
import pyogrio
from pyogrio.errors import DataLayerError, DataSourceError

from ..errors import InvalidInputError, RasterIOError
from ..files import check_output, locked_outputs, published
from .polygons import VectorizeSummary, iter_frames, summarise, vectorize

FORMATS = {".gpkg": "GPKG", ".parquet": "Parquet", ".fgb": "FlatGeobuf", ".geojson": "GeoJSON"}


def vectorize_to_file(src: str | Path, dst: str | Path, *, layer: str | None = None, overwrite: bool = False,
                      simplify: float | None = None, chunk_size: int = 20_000, **options) -> VectorizeSummary:
    """Polygons of ``src`` written to ``dst`` (by extension). GeoPackage, FlatGeobuf and GeoJSON output
    without ``simplify`` is streamed to GDAL in Arrow batches of ``chunk_size`` polygons, so memory
    stays bounded whatever the raster size; GeoParquet and coverage simplification need the whole
    layer in memory first. ``options`` are those of ``vectorize``."""
    dst = check_vector_output(dst, overwrite, inputs=[src])
    with locked_outputs([dst]):  # a second run to the same file fails now, not after all the work
        return _vectorize_locked(src, dst, layer, overwrite, simplify, chunk_size, options)


def _vectorize_locked(src, dst: Path, layer: str | None, overwrite: bool, simplify: float | None, chunk_size: int,
                      options: dict) -> VectorizeSummary:
    suffix = dst.suffix.lower()
    if simplify or suffix == ".parquet":
        frame = vectorize(src, simplify=simplify, **options)
        write_layer(frame, dst, layer=layer, overwrite=overwrite)
        return summarise(frame, dst)
    summary = VectorizeSummary(output=dst)
    frames = iter_frames(src, chunk_size=chunk_size, **options)
    first = next(frames)
    first_table = _arrow_table(first)
    schema = first_table.schema
    for name in ("class_name", "source"):  # an empty first chunk types its text columns null
        schema = schema.set(schema.get_field_index(name), pa.field(name, pa.string()))

    def batches() -> Iterator[pa.RecordBatch]:
        summary.add(first)
        yield from first_table.cast(schema).to_batches()
        for frame in frames:
            summary.add(frame)
            yield from _arrow_table(frame).cast(schema).to_batches()

    # 4-connected patches are single polygons; 8-connected ones that meet only at a corner are
    # MultiPolygons, mixed with Polygons in one layer, which only an untyped layer takes as they are.
    geometry_type = "Unknown" if options.get("connectivity", 4) == 8 else "Polygon"
    try:
        with published(dst, overwrite, errors=VECTOR_WRITE_ERRORS) as tmp:
            pyogrio.write_arrow(pa.RecordBatchReader.from_batches(schema, batches()), tmp,
                                driver=FORMATS[suffix], layer=layer or dst.stem, geometry_type=geometry_type,
                                crs=first.crs.to_wkt() if first.crs else None)
            verify_layer(tmp, dst, layer or dst.stem, summary.polygons)
        if not summary.polygons:
            warnings.warn(f"{src}: no polygons (all nodata or no selected class); the layer is empty", stacklevel=2)
    finally:
        frames.close()  # the raster stays open in the generator until it finishes or is closed
    return summary


# What OGR raises for a failed write (a full disk, an unusable path): failures of the output,
# reported in one line, not tracebacks.
VECTOR_WRITE_ERRORS = (DataSourceError, DataLayerError)


def verify_layer(path: Path, dst: Path, layer: str | None, polygons: int) -> None:
    """The written file opens and holds all ``polygons`` (a write that failed without raising, e.g. on
    a full disk, must not be published)."""
    try:
        features = pyogrio.read_info(path, layer=layer, force_feature_count=True)["features"]
    except VECTOR_WRITE_ERRORS as e:
        raise RasterIOError(f"{dst}: the written file cannot be read back ({str(e).splitlines()[0][:200]}); "
                            "nothing was published") from None
    if features != polygons:
        raise RasterIOError(f"{dst}: the written file holds {features} polygons, not the {polygons} written; "
                            "nothing was published")


def _arrow_table(frame: gpd.GeoDataFrame) -> pa.Table:
    return pa.table(frame.to_arrow(index=False, geometry_encoding="WKB"))


def check_vector_output(dst: str | Path, overwrite: bool, inputs: Sequence[str | Path] = ()) -> Path:
    """A known vector format, in a writable folder, not existing unless ``overwrite``."""
    dst = Path(dst)
    if dst.suffix.lower() not in FORMATS:
        raise InvalidInputError(f"{dst}: unknown vector format {dst.suffix!r}; use one of {', '.join(FORMATS)}")
    return check_output(dst, overwrite, inputs)


def write_layer(frame: gpd.GeoDataFrame, dst: str | Path, *, layer: str | None = None,
                overwrite: bool = False) -> Path:
    """Write polygons by extension (.gpkg, .parquet, .fgb, .geojson), published when complete."""
    dst = check_vector_output(dst, overwrite)
    suffix = dst.suffix.lower()
    with published(dst, overwrite, errors=VECTOR_WRITE_ERRORS) as tmp:
        if suffix == ".parquet":
            frame.to_parquet(tmp)
        else:
            kwargs = {"layer": layer or dst.stem} if suffix == ".gpkg" else {}
            # as the streamed layers: MultiPolygons (8-connectivity) beside Polygons, not all promoted
            frame.to_file(tmp, driver=FORMATS[suffix], engine="pyogrio", promote_to_multi=False, **kwargs)
            verify_layer(tmp, dst, kwargs.get("layer"), len(frame))
    return dst
