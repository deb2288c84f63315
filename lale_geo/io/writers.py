"""The COG writer: rows of a raster written to a hidden temporary file, then copied to a verified COG and
published in one step (:mod:`lale_geo.files`), so an interrupted run never leaves a half-written map under a
final name; and the rule that any GDAL error while writing is fatal."""

from __future__ import annotations

import contextlib
import glob
import hashlib
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio._err import CPLE_BaseError
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.windows import Window

from ..errors import LaleGeoError, RasterIOError
from ..files import publish, remove_quietly, run_tag, temporary_path, write_error_line
from .overviews import OverviewPyramid
from .raster import gdal_messages

COG_BLOCKSIZE = 512  # the COG gets overviews when the image is larger than one block

__all__ = ["COG_BLOCKSIZE", "RasterWriter", "fatal_write_errors", "row_digest"]


def _holds_data(dataset, nodata, pixels: int = 1 << 22) -> bool:
    """Whether band 1 holds a value other than ``nodata``, read by bands of about ``pixels`` (whole rows: a
    fixed row count read 123 MB at once from a 120,000 px wide map), stopping at the first."""
    rows = max(1, pixels // dataset.width)
    return any((dataset.read(1, window=Window(0, y, dataset.width, min(rows, dataset.height - y))) != nodata).any()
               for y in range(0, dataset.height, rows))


@contextlib.contextmanager
def fatal_write_errors(path: Path, doing: str, errors: tuple[type[BaseException], ...] = ()) -> Iterator[None]:
    """Any GDAL error while ``doing`` something to the output ``path`` ends the run with one line naming
    ``path`` and GDAL's own first message: rasterio raises some of them and only logs others (a failed
    COG copy), and a logged error must never let a broken file be published. ``errors``: more exception
    types that mean a failed write."""
    with gdal_messages() as gdal:
        try:
            yield
        except LaleGeoError:
            raise
        except (RasterioError, CPLE_BaseError, OSError, *errors) as e:
            cause = write_error_line(gdal.errors[0] if gdal.errors else str(e)) or type(e).__name__
            raise RasterIOError(f"{path}: {doing} failed ({cause}); nothing was published") from None
    if gdal.errors:
        raise RasterIOError(f"{path}: {doing} failed ({write_error_line(gdal.errors[0])}); nothing was published")


def row_digest(data: np.ndarray) -> str:
    """Checksum of (bands, rows, width) pixels as written, compared with a re-read of the finished file."""
    return hashlib.sha256(np.ascontiguousarray(data).tobytes()).hexdigest()[:16]


class RasterWriter:
    """Writes rows of a raster to a hidden temporary file beside the target, then publishes it as a
    COG (tiled, compressed, overviews) under the final name in one rename. Until ``commit`` nothing
    exists under the final name; ``abort`` removes the temporary file.

    Each ``write_rows`` reaches the disk before it returns (the file is reopened per write), so a run
    killed at any point keeps every row written so far: with ``key`` (a digest of the run's inputs
    and parameters) the temporary name is stable and ``resume=True`` continues in the same file.

    Every GDAL error is fatal (:func:`fatal_write_errors`), and ``commit`` verifies the finished COG
    (size, bands, type, overviews, and the checksum of every row band written, in ``digests``) before it
    publishes it.
    """

    def __init__(self, path: str | Path, profile: dict, *, colormap: dict | None = None,
                 tags: dict | None = None, band_descriptions: Sequence[str] = (),
                 overview_resampling: str = "MODE", compress: str = "DEFLATE", key: str | None = None,
                 resume: bool = False, overwrite: bool = True) -> None:
        self.path = Path(path)
        self.overwrite = overwrite
        self.tmp = temporary_path(self.path, key)
        self._cog = temporary_path(self.path, f"{key or run_tag()}.cog")
        self._overview_resampling = overview_resampling
        self._compress = compress
        self._shape = (profile["count"], profile["height"], profile["width"], np.dtype(profile["dtype"]))
        self.digests: list[tuple[int, int, str]] = []  # (first row, rows, row_digest) per write_rows
        # MODE overviews are built as rows arrive; a resumed run first feeds them the rows already on disk,
        # so that its map is byte-identical to an uninterrupted run's. Other resamplings: GDAL, at commit.
        self._pyramid: OverviewPyramid | None = None
        self._pyramid_rows = 0  # rows of the map fed to the pyramid
        self._vrt = self.tmp.with_name(self.tmp.name + ".vrt")
        resumed = resume and self.tmp.exists()
        # Untiled strips with fast ZSTD: rows are written in order, so strips are never re-read.
        strips = dict(profile, driver="GTiff", tiled=False, compress="ZSTD", zstd_level=1,
                      blockysize=16, BIGTIFF="IF_SAFER")
        strips.pop("blockxsize", None)
        try:
            if not resumed:
                self._create(strips, colormap, tags, band_descriptions)
            if overview_resampling == "MODE" and max(profile["width"], profile["height"]) > COG_BLOCKSIZE:
                with fatal_write_errors(self.path, "creating its temporary overviews"):
                    self._pyramid = OverviewPyramid(self.tmp, dict(profile, transform=profile.get(
                        "transform") or Affine.identity()), COG_BLOCKSIZE)
        except BaseException:
            self.abort()  # the caller never gets this writer to abort
            raise

    def _create(self, profile: dict, colormap: dict | None, tags: dict | None,
                band_descriptions: Sequence[str]) -> None:
        with fatal_write_errors(self.path, "creating its temporary file"), self._open("w", **profile) as dst:
            if colormap:
                dst.write_colormap(1, colormap)
            if tags:
                dst.update_tags(**{k: str(v) for k, v in tags.items()})
            for i, description in enumerate(band_descriptions, start=1):
                dst.set_band_description(i, description)

    def _open(self, mode: str, **profile):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            # The driver is named: a damaged file must fail as a GTiff, not as "not recognized".
            return rasterio.open(self.tmp, mode, **dict({"driver": "GTiff"}, **profile))

    def write_rows(self, y0: int, data: np.ndarray) -> None:
        """Write (bands, rows, width) or (rows, width) data starting at scene row ``y0``."""
        data = (data if data.ndim == 3 else data[None]).astype(self._shape[3], copy=False)
        with fatal_write_errors(self.path, f"writing rows {y0}-{y0 + data.shape[1]}"):
            with self._open("r+") as dst:
                dst.write(data, window=Window(0, y0, data.shape[2], data.shape[1]))
            self._feed_pyramid(y0, data)
        self.digests.append((y0, data.shape[1], row_digest(data)))

    def _feed_pyramid(self, y0: int, data: np.ndarray) -> None:
        if self._pyramid is None:
            return
        if y0 < self._pyramid_rows:  # rows written again: GDAL builds the overviews at commit
            self._drop_pyramid()
            return
        if y0 > self._pyramid_rows:  # a resumed run: the rows written before the interruption first
            with self._open("r") as dst:
                for top in range(self._pyramid_rows, y0, 1024):
                    rows = min(1024, y0 - top)
                    self._pyramid.add(dst.read(window=Window(0, top, dst.width, rows)))
        self._pyramid.add(data)
        self._pyramid_rows = y0 + data.shape[1]

    def _drop_pyramid(self) -> None:
        if self._pyramid is not None:
            self._pyramid.close()
            remove_quietly(*self._pyramid.paths)
            self._pyramid = None

    def commit(self) -> Path:
        """Copy the rows to a COG, verify it and publish it under the final name (temporaries removed)."""
        try:
            source = self.tmp
            if self._pyramid is not None and self._pyramid_rows < self._shape[1]:
                self._drop_pyramid()  # rows missing from it (never for a complete map): GDAL builds them
            if self._pyramid is not None:
                with fatal_write_errors(self.path, "finishing its overviews"):
                    self._pyramid.finish()
                    source = self._pyramid.vrt(self.tmp, self._vrt)
            with fatal_write_errors(self.path, "writing the COG"):
                rasterio.shutil.copy(source, self._cog, driver="COG", COMPRESS=self._compress,
                                     BLOCKSIZE=COG_BLOCKSIZE, OVERVIEW_RESAMPLING=self._overview_resampling,
                                     NUM_THREADS="ALL_CPUS", BIGTIFF="IF_SAFER")
            with fatal_write_errors(self.path, "verifying the COG"):
                self._verify(self._cog)
            publish(self._cog, self.path, self.overwrite)
        finally:
            self.abort()
        return self.path

    def _verify_overviews(self, dst) -> None:
        """Each overview level holds data where the full resolution does: a level all nodata while the
        map is not would draw a blank map at that zoom (a lone row or column dropped did that)."""
        if dst.nodata is None or not dst.overviews(1):
            return
        levels = [dst] + [rasterio.open(dst.name, overview_level=i) for i in range(len(dst.overviews(1)))]
        try:
            found = [_holds_data(level, dst.nodata) for level in levels]
        finally:
            for level in levels[1:]:
                level.close()
        for i, holds in enumerate(found[1:], start=1):
            if holds != found[0]:
                raise RasterIOError(f"{self.path}: overview level {i} ({levels[i].width}x{levels[i].height} px) "
                                    f"holds {'data' if holds else 'only nodata'} where the map holds "
                                    f"{'data' if found[0] else 'none'}; nothing was published")

    def _verify(self, cog: Path) -> None:
        """The finished file opens, has the size, bands, type and overviews expected, and holds exactly
        the rows written (their checksums, re-read band by band)."""
        count, height, width, dtype = self._shape
        with rasterio.open(cog) as dst:
            found = (dst.count, dst.height, dst.width, np.dtype(dst.dtypes[0]))
            if found != self._shape:
                raise RasterIOError(f"{self.path}: the written file is {found[:3]} {found[3]}, not the "
                                    f"{self._shape[:3]} {dtype} expected; nothing was published")
            if max(width, height) > COG_BLOCKSIZE and not dst.overviews(1):
                raise RasterIOError(f"{self.path}: the written file has no overviews; nothing was published")
            self._verify_overviews(dst)
            for y0, rows, digest in self.digests:
                if row_digest(dst.read(window=Window(0, y0, width, rows))) != digest:
                    raise RasterIOError(f"{self.path}: rows {y0}-{y0 + rows} read back differ from the rows "
                                        "written (a failed write?); nothing was published")

    def abort(self) -> None:
        """Remove the temporary files."""
        self._drop_pyramid()
        for p in (self.tmp, self._cog, self._vrt):
            p.unlink(missing_ok=True)
        # overview files of an interrupted run that this (resumed) writer did not make
        remove_quietly(*self.tmp.parent.glob(glob.escape(self.tmp.name) + ".ovr*"))
