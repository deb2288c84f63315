"""Scenes of real pixels at any size for the benchmarks.

- :func:`real_scene`: what users have, a tiled DEFLATE GeoTIFF (512 px blocks) whose every block holds
  different real pixels (a crop of one of the Dubai aerial images, flipped and rotated at random), with
  overviews if asked. GDAL must decode every block: cache and I/O costs show. Use it for memory, bytes
  and speed figures.
- :func:`make_scene`: a VRT repeating one image. GDAL decodes only that image's few blocks whatever the
  size; kept for tests of the VRT path, not for figures.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np
import rasterio
import rasterio.enums
import rasterio.errors
import rasterio.shutil
import rasterio.windows
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


def labels(path: Path) -> np.ndarray:
    """The class ids of a map."""
    with rasterio.open(path) as src:
        return src.read(1)


DUBAI = SOURCE.parents[2]
SCENES_CACHE = Path(tempfile.gettempdir()) / "lale_geo_bench_scenes"


def _dubai_images(limit: int = 16) -> list[np.ndarray]:
    """Up to ``limit`` Dubai images of at least 512 x 512 px, spread over the dataset's tiles."""
    paths = sorted(DUBAI.glob("tile_*/images/*.jpg"))
    images = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        for path in paths[::max(1, len(paths) // limit)]:
            with rasterio.open(path) as src:
                if min(src.height, src.width) >= 512:
                    images.append(src.read())
    return images[:limit]


def real_scene(height: int, width: int, overviews: bool = False, folder: Path = SCENES_CACHE) -> Path:
    """A height x width tiled DEFLATE GeoTIFF (512 px blocks) of distinct real pixels (see the module's
    docstring), written once and kept in ``folder`` for later runs."""
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"real_{height}x{width}{'_ovr' if overviews else ''}.tif"
    if out.exists():
        return out
    images = _dubai_images()
    rng = np.random.default_rng(height * 7919 + width)
    block = 512
    tmp = out.with_suffix(".part.tif")
    with rasterio.open(tmp, "w", driver="GTiff", width=width, height=height, count=3, dtype="uint8",
                       crs="EPSG:32640", transform=from_origin(500000, 2800000, 0.5, 0.5), tiled=True,
                       blockxsize=block, blockysize=block, compress="deflate", photometric="RGB",
                       BIGTIFF="IF_SAFER") as dst:
        for y in range(0, height, block):
            h = min(block, height - y)
            rows = np.empty((3, h, width), np.uint8)
            for x in range(0, width, block):
                w = min(block, width - x)
                image = images[int(rng.integers(len(images)))]
                iy = int(rng.integers(0, image.shape[1] - block + 1))
                ix = int(rng.integers(0, image.shape[2] - block + 1))
                crop = np.rot90(image[:, iy:iy + block, ix:ix + block], int(rng.integers(4)), axes=(1, 2))
                if rng.random() < 0.5:
                    crop = crop[:, :, ::-1]
                rows[:, :, x:x + w] = crop[:, :h, :w]
            dst.write(rows, window=rasterio.windows.Window(0, y, width, h))
        if overviews:
            dst.build_overviews([2, 4, 8, 16], rasterio.enums.Resampling.average)
    tmp.rename(out)
    return out
