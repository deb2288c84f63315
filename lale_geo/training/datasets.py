"""Labelled image datasets for training and evaluation.

A dataset is a folder plus a class table (:mod:`lale_geo.training.class_tables`) whose named splits map to
sub-folders. Each split folder holds ``images/`` and ``masks/`` with matching file stems; masks are decoded
to class ids by the table's colours or values.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import ColorInterp
from rasterio.windows import Window

from ..errors import DatasetError, RasterIOError
from ..io.raster import checked_read, open_raster, window_validity
from .class_tables import ClassTable, resolve_class_table, shipped_class_tables
from .metrics import IGNORE_INDEX
from .worldcover import WORLDCOVER_TO_ARAS400K, remap_worldcover

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff")

# the class tables and the WorldCover remap live in their own modules; their names stay importable from here
__all__ = ["ClassTable", "IMAGE_SUFFIXES", "RasterSample", "Sample", "WORLDCOVER_TO_ARAS400K", "decode_mask",
           "labelled_sample", "load_split", "open_image", "remap_worldcover", "resolve_class_table",
           "shipped_class_tables", "split_folders", "IN_MEMORY_LIMIT_MB"]


@dataclass
class Sample:
    """One labelled image held in memory: (bands, H, W) pixels and an (H, W) uint8 mask (255 = ignore,
    which includes the image's invalid pixels); ``valid`` is the image's validity where it has any mask
    (nodata, alpha, NaN), else None."""

    name: str
    image: np.ndarray
    mask: np.ndarray
    valid: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return self.mask.shape

    def read(self, y: int, x: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        """Pixels and class ids of a window."""
        return self.image[:, y:y + height, x:x + width], self.mask[y:y + height, x:x + width]

    def pixel_sample(self, step: int = 97) -> np.ndarray:
        """(bands, N) pixels, about one in ``step``: enough for band statistics."""
        return self.image.reshape(self.image.shape[0], -1)[:, ::step]


class RasterSample:
    """One labelled image too large to hold in memory (a big GeoTIFF scene): windows of the image and
    the label raster are read and decoded on demand, so training and evaluation never load it whole.
    Windows hold the same pixels and class ids as a :class:`Sample` of the same files."""

    def __init__(self, name: str, image_path: Path, mask_path: Path, table: ClassTable, bands: int) -> None:
        self.name, self.image_path, self.mask_path, self.table, self.bands = name, image_path, mask_path, table, bands
        with open_image(image_path) as image, open_image(mask_path) as mask:
            self.shape: tuple[int, int] = (image.height, image.width)
            self.mask_bands = min(mask.count, 3)
            self.colormap = _palette(mask)

    @property
    def band_indexes(self) -> list[int]:
        return list(range(1, self.bands + 1))

    def read(self, y: int, x: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        window = Window(x, y, width, height)
        with open_image(self.image_path) as src, checked_read(src, window):
            image, valid = src.read(self.band_indexes, window=window), window_validity(src, self.band_indexes, window)
        return image, self._labels(window, valid)

    def read_mask(self, y: int, x: int, height: int, width: int) -> np.ndarray:
        window = Window(x, y, width, height)
        with open_image(self.image_path) as src, checked_read(src, window):
            valid = window_validity(src, self.band_indexes, window)
        return self._labels(window, valid)

    def _labels(self, window: Window, valid: np.ndarray) -> np.ndarray:
        """Class ids of a window, ignore where the image is invalid."""
        with open_image(self.mask_path) as src, checked_read(src, window):
            pixels = src.read(list(range(1, self.mask_bands + 1)), window=window)
        mask = _decode(pixels, self.colormap, self.table, self.mask_path)
        mask[~valid] = IGNORE_INDEX
        return mask

    def check_mask(self, block_pixels: int = 1 << 22) -> None:
        """Decode the whole label raster by blocks of rows (about ``block_pixels`` each), so that unknown
        values fail now, not mid-training."""
        rows = max(1, block_pixels // self.shape[1])
        for y in range(0, self.shape[0], rows):
            self.read_mask(y, 0, min(rows, self.shape[0] - y), self.shape[1])

    def pixel_sample(self, step: int = 97) -> np.ndarray:
        """(bands, N) pixels from a decimated read (about one in ``step``; not the same pixels as
        :meth:`Sample.pixel_sample`, so band statistics agree only approximately)."""
        k = max(1, round(step ** 0.5))
        height, width = max(1, self.shape[0] // k), max(1, self.shape[1] // k)
        with open_image(self.image_path) as src, checked_read(src, f"a decimated read ({height}x{width} px)"):
            pixels = src.read(self.band_indexes, out_shape=(self.bands, height, width))
        return pixels.reshape(self.bands, -1)


def open_image(path: Path) -> rasterio.DatasetReader:
    """Open a dataset image or mask (as ``open_raster`` does); failures are a one-line DatasetError."""
    try:
        return open_raster(path)
    except RasterIOError as e:
        raise DatasetError(str(e)) from None


def _palette(src: rasterio.DatasetReader) -> dict | None:
    """The colour table of a palette mask (its colours encode the classes), else None."""
    return src.colormap(1) if src.colorinterp[0] == ColorInterp.palette else None


def _read(path: Path) -> tuple[np.ndarray, list[ColorInterp], dict | None]:
    with open_image(path) as src, checked_read(src, f"the whole image ({src.height}x{src.width} px)"):
        return src.read(), list(src.colorinterp), _palette(src)


def decode_mask(path: Path, table: ClassTable) -> np.ndarray:
    """Class ids (uint8, 255 = ignore) of a colour, palette or value mask."""
    pixels, _, colormap = _read(path)
    return _decode(pixels, colormap, table, path)


UNKNOWN = 256  # lookup-table entry for a colour/value the class table does not name


@functools.lru_cache(maxsize=8)
def _lookup_table(named: tuple[tuple[int, int], ...], size: int) -> np.ndarray:
    """Class id (uint16; UNKNOWN for anything else) of every key below ``size``, from (key, id) pairs.
    Cached: a colour table is 32 MB, shared by every window and sample of one class table."""
    lut = np.full(size, UNKNOWN, np.uint16)
    for key, class_id in named:
        if 0 <= key < size:
            lut[key] = class_id
    lut.flags.writeable = False
    return lut


def _named_colours(table: ClassTable) -> tuple[tuple[int, int], ...]:
    """(packed RGB, class id) pairs; ignore colours map to IGNORE_INDEX and win over class colours."""
    pairs = [*((c, i) for i, c in enumerate(table.colours)), *((c, IGNORE_INDEX) for c in table.ignore_colours)]
    return tuple(((c[0] << 16) | (c[1] << 8) | c[2], class_id) for c, class_id in pairs)


def _named_values(table: ClassTable) -> dict:
    assert table.values is not None  # a table of value-coded labels
    return {**{v: i for i, v in enumerate(table.values)}, **{v: IGNORE_INDEX for v in table.ignore_values}}


def _decode(pixels: np.ndarray, colormap: dict | None, table: ClassTable, path: Path) -> np.ndarray:
    """Class ids of (bands, H, W) mask pixels (all of a mask or a window of it), by table lookup so that
    memory stays a few bytes per pixel."""
    if colormap is not None:  # palette PNG: look indices up as colours
        palette = np.array([colormap.get(i, (0, 0, 0, 0))[:3] for i in range(256)], np.uint8)
        pixels = palette[pixels[0]].transpose(2, 0, 1)
    if pixels.shape[0] >= 3:
        if pixels.dtype != np.uint8:
            raise DatasetError(f"{path}: {pixels.dtype} colour mask; colour masks must be 8-bit RGB "
                               "(use single-band value labels for other types)")
        rgb = pixels[:3].astype(np.uint32)
        keys = found = (rgb[0] << 16) | (rgb[1] << 8) | rgb[2]
        lut = _lookup_table(_named_colours(table), 1 << 24)
        describe = lambda k: f"RGB({k >> 16},{(k >> 8) & 255},{k & 255})"  # noqa: E731
    elif table.values is not None:
        found, describe, named = pixels[0], str, _named_values(table)
        if found.dtype in (np.uint8, np.uint16):
            keys, lut = found, _lookup_table(tuple(named.items()), 1 << 16)
        else:  # other integer or float labels: look their few distinct values up
            uniques, inverse = np.unique(found, return_inverse=True)
            lut = np.array([named.get(v.item(), UNKNOWN) for v in uniques], np.uint16)
            keys = inverse.reshape(found.shape)
    else:
        raise DatasetError(f"{path}: single-band mask but the class table {table.name!r} gives colours, "
                           "not values")
    ids = lut[keys]
    unknown = ids == UNKNOWN
    if unknown.any():
        listed = ", ".join(describe(k.item()) for k in np.unique(found[unknown])[:8])
        raise DatasetError(f"{path}: mask values not in class table {table.name!r}: {listed}")
    return ids.astype(np.uint8)


def split_folders(root: str | Path, table: ClassTable, split: str) -> list[Path]:
    root = Path(root)
    if split == "all" or not table.splits:
        return [root] if (root / "images").is_dir() else sorted(p.parent for p in root.glob("*/images"))
    if split not in table.splits:
        raise DatasetError(f"{root}: unknown split {split!r}; class table {table.name!r} has "
                           f"{', '.join(sorted(table.splits))}")
    return [root / sub for sub in table.splits[split]]


def _same_grid(image_path: Path, mask_path: Path) -> None:
    """Georeferenced image and label rasters must share their grid (CRS and transform)."""
    with open_image(image_path) as a, open_image(mask_path) as b:
        if a.crs and b.crs and (a.crs != b.crs or a.transform != b.transform):
            raise DatasetError(f"{mask_path}: not on the grid of {image_path.name} (CRS or transform "
                               "differ); resample the labels onto the image grid first")


IN_MEMORY_LIMIT_MB = 2048  # per split; GeoTIFFs past it are read window by window (RasterSample)


def load_split(root: str | Path, table: ClassTable, split: str, bands: int | None = None,
               in_memory_limit_mb: float = IN_MEMORY_LIMIT_MB) -> list[Sample | RasterSample]:
    """Every (image, mask) pair of ``split``. Masks may be colour or palette images or single-band label
    rasters (GeoTIFF labels on the image's grid, with "value" per class in the table); the image's invalid
    pixels (nodata, alpha, NaN) are labelled ignore. Images and masks are decoded into memory while the
    split's total stays within ``in_memory_limit_mb``; GeoTIFFs that would pass it (whole scenes) are read
    window by window instead. Other formats are always loaded: a PNG or JPEG is decoded whole for any
    window anyway."""
    bands = bands or len(table.bands)
    samples: list[Sample | RasterSample] = []
    held_mb = 0.0
    for folder in split_folders(root, table, split):
        images = sorted(p for p in (folder / "images").glob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise DatasetError(f"{folder / 'images'}: no images found")
        for image_path in images:
            masks = [p for p in (folder / "masks").glob(image_path.stem + ".*")
                     if p.suffix.lower() in IMAGE_SUFFIXES]
            if not masks:
                raise DatasetError(f"{image_path}: no mask {image_path.stem}.* in {folder / 'masks'}")
            with open_image(image_path) as src, open_image(masks[0]) as labels:
                if src.count < bands:
                    raise DatasetError(f"{image_path}: {src.count} band(s), need {bands}")
                if labels.shape != src.shape:
                    raise DatasetError(f"{masks[0]}: mask is {labels.shape}, image is {src.shape}")
                megabytes = src.width * src.height * (bands * np.dtype(src.dtypes[0]).itemsize + 1) / 2**20
                windowed = src.driver == "GTiff" and labels.driver == "GTiff" and \
                    held_mb + megabytes > in_memory_limit_mb
            _same_grid(image_path, masks[0])
            name = f"{folder.name}/{image_path.stem}"
            if windowed:
                sample = RasterSample(name, image_path, masks[0], table, bands)
                sample.check_mask()
                samples.append(sample)
                continue
            held_mb += megabytes
            samples.append(labelled_sample(name, image_path, decode_mask(masks[0], table), bands, masks[0]))
    return samples


def labelled_sample(name: str, image_path: Path, mask: np.ndarray, bands: int, mask_path: Path | None = None) -> Sample:
    """A :class:`Sample` of the first ``bands`` bands of ``image_path`` and its class ids ``mask`` (decoded
    from ``mask_path``, or drawn from polygons), with the image's invalid pixels (nodata, alpha, NaN)
    labelled ignore."""
    with open_image(image_path) as src:
        if src.count < bands:
            raise DatasetError(f"{image_path}: {src.count} band(s), need {bands}")
        if mask.shape != (src.height, src.width):
            raise DatasetError(f"{mask_path or image_path}: labels are {mask.shape}, the image is "
                               f"{(src.height, src.width)}")
        indexes = list(range(1, bands + 1))
        with checked_read(src, f"the whole image ({src.height}x{src.width} px)"):
            image = src.read(indexes)
            valid = window_validity(src, indexes, Window(0, 0, src.width, src.height))
    mask[~valid] = IGNORE_INDEX
    return Sample(name, image, mask, None if valid.all() else valid)
