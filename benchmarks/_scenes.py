"""Scenes of real pixels at any size for the benchmarks: one Dubai aerial image (validation tile 4),
converted once to a tiled GeoTIFF and repeated in a VRT mosaic (no GBs on disk)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import rasterio
import rasterio.errors
import rasterio.shutil
from rasterio.transform import from_origin

SOURCE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "dubai-aerial" / "tile_4" / "images" / \
    "image_part_001.jpg"


def make_tile(folder: Path) -> Path:
    out = folder / "tile.tif"
    with warnings.catch_warnings():  # a plain JPEG: no georeferencing, we add it below
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(SOURCE) as src:
            data = src.read()
    with rasterio.open(out, "w", driver="GTiff", width=data.shape[2], height=data.shape[1], count=3, dtype="uint8",
                       crs="EPSG:32640", transform=from_origin(500000, 2800000, 0.5, 0.5), tiled=True,
                       blockxsize=256, blockysize=256, compress="deflate", photometric="RGB") as dst:
        dst.write(data)
    return out


def make_scene(tile: Path, size: int, folder: Path) -> Path:
    """A size x size VRT repeating ``tile`` (copies side by side)."""
    with rasterio.open(tile) as src:
        th, tw = src.height, src.width
    sources = []
    for band in (1, 2, 3):
        for y in range(0, size, th):
            for x in range(0, size, tw):
                h, w = min(th, size - y), min(tw, size - x)
                sources.append(
                    f'<SimpleSource><SourceFilename relativeToVRT="0">{tile}</SourceFilename>'
                    f"<SourceBand>{band}</SourceBand><SrcRect xOff=\"0\" yOff=\"0\" xSize=\"{w}\" ySize=\"{h}\"/>"
                    f'<DstRect xOff="{x}" yOff="{y}" xSize="{w}" ySize="{h}"/></SimpleSource>|{band}')
    bands_xml = []
    for band, interp in ((1, "Red"), (2, "Green"), (3, "Blue")):
        body = "".join(s.split("|")[0] for s in sources if s.endswith(f"|{band}"))
        bands_xml.append(f'<VRTRasterBand dataType="Byte" band="{band}"><ColorInterp>{interp}</ColorInterp>'
                         f"{body}</VRTRasterBand>")
    vrt = folder / f"scene_{size}.vrt"
    vrt.write_text(f'<VRTDataset rasterXSize="{size}" rasterYSize="{size}"><SRS>EPSG:32640</SRS>'
                   f"<GeoTransform>500000, 0.5, 0, 2800000, 0, -0.5</GeoTransform>{''.join(bands_xml)}</VRTDataset>")
    return vrt


def scene_geotiff(folder: Path, size: int) -> Path:
    """A size x size real-pixel mosaic written as a tiled DEFLATE GeoTIFF (what users usually have)."""
    out = folder / f"scene_{size}.tif"
    rasterio.shutil.copy(make_scene(make_tile(folder), size, folder), out, driver="GTiff", tiled=True,
                         blockxsize=512, blockysize=512, compress="DEFLATE")
    return out


def labels(path: Path) -> np.ndarray:
    """The class ids of a map."""
    with rasterio.open(path) as src:
        return src.read(1)
