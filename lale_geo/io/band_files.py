"""Scenes whose bands are separate files (Sentinel-2 and Landsat as distributed, STAC items): stacked into
one virtual raster (a GDAL VRT) on the finest band's grid, which the checked reader then reads like any
scene, window by window. Nothing is copied: the VRT only points at the band files (local or remote).

A STAC item (or an ItemCollection holding one) gives its band files by the assets' ``eo:bands`` /
``bands`` common names (``red``, ``green``, ``blue``, ``nir``, ...) or their keys; ``assets`` overrides
either, e.g. ``{"red": "B04"}``.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from urllib.parse import urljoin, urlsplit
from urllib.request import urlopen
from xml.sax.saxutils import escape

from ..errors import InvalidInputError, RasterIOError
from ..files import is_remote, temporary_path
from .raster import open_raster

_INTERP = {"red": "Red", "green": "Green", "blue": "Blue"}
_GDAL_TYPES = {"uint8": "Byte", "int8": "Int8", "uint16": "UInt16", "int16": "Int16", "uint32": "UInt32",
               "int32": "Int32", "float32": "Float32", "float64": "Float64"}


def is_stac_item(src) -> bool:
    """A STAC item (or ItemCollection) file or URL, by its name."""
    return isinstance(src, (str, Path)) and urlsplit(str(src)).path.lower().endswith(".json")


def gdal_path(href: str) -> str:
    """The name GDAL opens a file by: ``/vsicurl/`` for http(s), ``/vsis3/`` for s3 (what rasterio does for
    its own arguments, needed here because the VRT names its sources itself)."""
    if href.startswith(("http://", "https://")):
        return f"/vsicurl/{href}"
    if href.startswith("s3://"):
        return f"/vsis3/{href[5:]}"
    if href.startswith("gs://"):
        return f"/vsigs/{href[5:]}"
    return href if is_remote(href) else str(Path(href).resolve())


def _read_json(src: str | Path) -> tuple[dict, str]:
    """The JSON document at ``src`` (a path or a URL) and the base its relative hrefs resolve against."""
    where = str(src)
    try:
        if where.startswith(("http://", "https://")):
            with urlopen(where, timeout=30) as response:  # noqa: S310 - a URL the user gave
                return json.loads(response.read()), where
        return json.loads(Path(where).read_text()), Path(where).resolve().as_uri()
    except OSError as e:
        raise RasterIOError(f"{src}: cannot read the STAC item ({getattr(e, 'strerror', None) or e})") from None
    except ValueError as e:
        raise InvalidInputError(f"{src}: not a JSON STAC item ({e})") from None


def _item(src: str | Path) -> tuple[dict, str]:
    document, base = _read_json(src)
    if document.get("type") == "FeatureCollection":
        features = document.get("features") or []
        if len(features) != 1:
            raise InvalidInputError(f"{src}: an ItemCollection of {len(features)} items; give one item (one scene)")
        document = features[0]
    if document.get("type") != "Feature" or not isinstance(document.get("assets"), dict):
        raise InvalidInputError(f"{src}: not a STAC item (no \"type\": \"Feature\" with \"assets\")")
    return document, base


def _common_names(asset: dict) -> list[str]:
    """The common names of an asset's bands (STAC 1.0 ``eo:bands``, 1.1 ``bands`` with ``eo:common_name``)."""
    bands = asset.get("eo:bands") or asset.get("bands") or []
    return [str(b.get("common_name") or b.get("eo:common_name") or "").lower() for b in bands if isinstance(b, dict)]


def item_band_files(src: str | Path, names: Sequence[str], assets: Mapping[str, str] | None = None) -> list[str]:
    """The files of the bands ``names`` (e.g. a card's ``red, green, blue``) of the STAC item ``src``: the
    asset given in ``assets`` for a name, else the one-band asset with that common name, else the asset
    whose key is the name. Hrefs are resolved against the item's location."""
    item, base = _item(src)
    assets = dict(assets or {})
    unknown = [key for key in assets.values() if key not in item["assets"]]
    if unknown:
        raise InvalidInputError(f"{src}: no asset {unknown[0]!r} (assets: {', '.join(item['assets'])})")
    files = []
    for name in names:
        key = assets.get(name)
        if key is None:
            matches = [k for k, a in item["assets"].items() if _common_names(a) == [name.lower()]]
            matches = matches or [k for k in item["assets"] if k.lower() == name.lower()]
            if len(matches) != 1:
                found = "no asset" if not matches else f"{len(matches)} assets ({', '.join(matches)})"
                raise InvalidInputError(f"{src}: {found} for band {name!r}; choose one with --asset {name}=KEY "
                                        f"(assets: {', '.join(item['assets'])})")
            key = matches[0]
        href = item["assets"][key].get("href")
        if not href:
            raise InvalidInputError(f"{src}: asset {key!r} has no href")
        files.append(_resolve(href, base))
    return files


def _resolve(href: str, base: str) -> str:
    """An asset href as a local path or URL: absolute as given, relative against the item's location."""
    if urlsplit(href).scheme or href.startswith("/"):
        return href[len("file://"):] if href.startswith("file://") else href
    joined = urljoin(base, href)
    return urlsplit(joined).path if joined.startswith("file:") else joined


def stack_vrt(files: Sequence[str | Path], names: Sequence[str] = ()) -> str:
    """The XML of a VRT whose bands are the one-band ``files`` in order, on the grid of the finest of them
    (coarser bands resampled bilinearly). ``names`` (e.g. ``red``) set the colour interpretation.

    Raises:
        InvalidInputError: a file with several bands, another CRS, another data type, or a rotated grid.
    """
    grids = []
    for path in files:
        with open_raster(path) as src:
            if src.count != 1:
                raise InvalidInputError(f"{path}: {src.count} bands; a band file holds one band")
            if src.transform.b or src.transform.d:
                raise InvalidInputError(f"{path}: rotated or sheared grid; warp it north-up first (gdalwarp)")
            grids.append((str(path), src.crs, src.transform, src.width, src.height, src.dtypes[0], src.nodata))
    first = grids[0]
    for path, crs, *_, dtype, _ in grids[1:]:
        if crs != first[1]:
            raise InvalidInputError(f"{path}: CRS {crs} differs from {first[0]}'s {first[1]}; warp the bands to "
                                    "one CRS first")
        if dtype != first[5]:
            raise InvalidInputError(f"{path}: {dtype} values, {first[0]} has {first[5]}; give bands of one type")
    finest = min(grids, key=lambda g: abs(g[2].a))
    t, width, height = finest[2], finest[3], finest[4]
    wkt = escape(first[1].to_wkt()) if first[1] else ""
    bands = []
    for i, (path, _, st, sw, sh, dtype, nodata) in enumerate(grids):
        dx, dy = (st.c - t.c) / t.a, (st.f - t.f) / t.e
        dw, dh = sw * st.a / t.a, sh * st.e / t.e
        interp = _INTERP.get(names[i].lower(), "Undefined") if i < len(names) else "Undefined"
        nodata_xml = f"<NoDataValue>{nodata!r}</NoDataValue>" if nodata is not None else ""
        source_nodata = f"<NODATA>{nodata!r}</NODATA>" if nodata is not None else ""
        bands.append(
            f'<VRTRasterBand dataType="{_GDAL_TYPES[dtype]}" band="{i + 1}"><ColorInterp>{interp}</ColorInterp>'
            f'{nodata_xml}<ComplexSource resampling="bilinear">'
            f'<SourceFilename relativeToVRT="0">{escape(gdal_path(path))}</SourceFilename><SourceBand>1</SourceBand>'
            f'<SrcRect xOff="0" yOff="0" xSize="{sw}" ySize="{sh}"/>'
            f'<DstRect xOff="{dx!r}" yOff="{dy!r}" xSize="{dw!r}" ySize="{dh!r}"/>{source_nodata}'
            f"</ComplexSource></VRTRasterBand>")
    return (f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">'
            + (f'<SRS dataAxisToSRSAxisMapping="1,2">{wkt}</SRS>' if wkt else "")
            + f"<GeoTransform>{t.c!r}, {t.a!r}, {t.b!r}, {t.f!r}, {t.d!r}, {t.e!r}</GeoTransform>"
            + "".join(bands) + "</VRTDataset>\n")


def write_stack(files: Sequence[str | Path], names: Sequence[str], vrt: Path) -> Path:
    """The VRT of ``files`` at ``vrt``; left untouched when it already says the same (so that a resumed run
    finds the same input)."""
    text = stack_vrt(files, names)
    if not (vrt.exists() and vrt.read_text() == text):
        tmp = temporary_path(vrt)
        tmp.write_text(text)
        os.replace(tmp, vrt)
    return vrt


@contextlib.contextmanager
def scene_input(src, names: Sequence[str], dst: str | Path) -> Iterator[str | Path]:
    """What ``predict`` reads for ``src``: the scene itself, or, for a list of band files or a STAC item, their
    VRT beside ``dst`` (hidden; removed when the run ends, kept when it is interrupted, for ``--resume``)."""
    if isinstance(src, (list, tuple)):
        files = [str(f) for f in src]
        if len(files) != len(names):
            raise InvalidInputError(f"{len(files)} band file(s) given, the weights need {len(names)} "
                                    f"({', '.join(names)}), in that order")
    elif is_stac_item(src):
        files = item_band_files(src, names)
    else:
        yield src
        return
    dst = Path(dst)
    vrt = write_stack(files, names, dst.with_name(f".{dst.name}.bands.vrt"))
    try:
        yield str(vrt)
    except KeyboardInterrupt:
        raise  # kept: a resumed run reads the same input
    except BaseException:
        vrt.unlink(missing_ok=True)
        raise
    vrt.unlink(missing_ok=True)
