"""Raster output and the one fault-safe publish step: outputs are written under hidden temporary
names beside their target and published by :func:`publish` once complete, so an interrupted run never
leaves a half-written file under a final name, and nothing is replaced without ``overwrite``."""

from __future__ import annotations

import contextlib
import fcntl
import glob
import hashlib
import os
import re
import uuid
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

from .errors import InvalidInputError, LaleGeoError, OutputExistsError, OutputLockedError, RasterIOError, message_line
from .overviews import OverviewPyramid
from .raster import gdal_messages, is_remote
from .stitching import OUTPUT_NODATA

COG_BLOCKSIZE = 512  # the COG gets overviews when the image is larger than one block

__all__ = ["OUTPUT_NODATA", "RasterWriter", "check_output", "locked_outputs", "publish", "published", "temporary_path"]


def check_output(path: str | Path, overwrite: bool, inputs: Sequence[str | Path] = ()) -> Path:
    """Refuse an output that equals an input, sits in a missing/unwritable folder, or exists already."""
    path = Path(path)
    if any(path.resolve() == Path(other).resolve() for other in inputs if not is_remote(other)):
        raise InvalidInputError(f"{path}: output is the input file; choose another output path")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise InvalidInputError(f"{path}: output folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise InvalidInputError(f"{path}: output folder {folder} is not writable")
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path}: exists; pass overwrite=True to replace it")
    _probe_folder(path)
    return path


def _probe_folder(path: Path) -> None:
    """Create and remove a file beside ``path``: the only sure test that files can be made there (a folder
    may be writable by its mode yet refuse files, e.g. /proc, a read-only mount), before any work."""
    probe = temporary_path(path, f"{os.getpid()}-{uuid.uuid4().hex[:8]}.probe")
    try:
        os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except OSError as e:
        raise InvalidInputError(f"{path}: cannot create files in {path.parent} ({e.strerror or e})") from None
    os.unlink(probe)


def temporary_path(final: str | Path, tag: str | None = None) -> Path:
    """A hidden name beside ``final`` for its file in progress, unique to this run unless ``tag`` (a
    digest of a resumable run's parameters) is given; it keeps ``final``'s suffix so that drivers
    chosen by extension still work."""
    final = Path(final)
    tag = tag or f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    return final.with_name(f".{final.name}.{tag}.part{final.suffix}")


def publish(tmp: str | Path, final: str | Path, overwrite: bool) -> Path:
    """Move the finished ``tmp`` to ``final`` in one step. Without ``overwrite`` an existing ``final``
    (even one created while this run was working) is never replaced: the temporary file is linked
    under the final name, which fails if that name exists."""
    tmp, final = Path(tmp), Path(final)
    if overwrite:
        os.replace(tmp, final)
        return final
    try:
        os.link(tmp, final)
    except FileExistsError:
        tmp.unlink(missing_ok=True)
        raise OutputExistsError(f"{final}: was created by something else while this run worked; "
                                "nothing was replaced (pass overwrite=True to replace it)") from None
    except OSError:  # a file system without hard links: check, then rename (a small race remains)
        if final.exists():
            tmp.unlink(missing_ok=True)
            raise OutputExistsError(f"{final}: exists; pass overwrite=True to replace it") from None
        os.replace(tmp, final)
        return final
    tmp.unlink()
    return final


def lock_path(final: str | Path) -> Path:
    """The hidden lock file beside ``final`` that a run writing ``final`` holds."""
    final = Path(final)
    return final.with_name(f".{final.name}.lock")


def _lock(final: Path) -> int:
    """Take the lock of ``final`` (an exclusive ``flock``, released by the OS if the process dies) and
    write this process's pid into it; fail at once, naming the holder, if another run has it."""
    path = lock_path(final)
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise RasterIOError(f"{final}: cannot create the lock file {path.name} ({e.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise OutputLockedError(f"{final}: another run (pid {owner}) is writing this output; wait for it "
                                    "to end or choose another output") from None
        with contextlib.suppress(FileNotFoundError):
            if os.path.samestat(os.fstat(fd), os.stat(path)):
                break
        os.close(fd)  # a run that just ended removed this file: lock the one now under the name
    with contextlib.suppress(OSError):  # the pid only improves the message of a losing run
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


@contextlib.contextmanager
def locked_outputs(paths: Sequence[str | Path]) -> Iterator[None]:
    """Hold the lock of every output in ``paths`` for the block: a second run to one of them fails at once
    in one line (:class:`OutputLockedError`) instead of sharing its files."""
    held: list[tuple[Path, int]] = []
    try:
        for path in paths:
            held.append((Path(path), _lock(Path(path))))
        yield
    finally:
        for path, fd in reversed(held):
            lock_path(path).unlink(missing_ok=True)  # before the unlock: a waiting run re-checks the name
            os.close(fd)


@contextlib.contextmanager
def published(final: str | Path, overwrite: bool = False, tag: str | None = None,
              errors: tuple[type[BaseException], ...] = ()) -> Iterator[Path]:
    """Context manager for a whole-file output: yields a temporary path to write, publishes it to
    ``final`` when the block ends without error, removes it otherwise (temporary files beside it that
    its writer made too, such as SQLite's journal of a GeoPackage).

    Args:
        final: the output path.
        overwrite: replace an existing ``final`` (only at the very end).
        tag: the temporary name's tag (default: unique to this run).
        errors: more exception types that mean "the write failed" (e.g. pyogrio's); with OSError and
            GDAL's errors they end in one :class:`RasterIOError` naming ``final`` and the cause.

    Example:
        >>> with published("item.json", overwrite=False) as tmp:
        ...     tmp.write_text(text)
    """
    tmp = temporary_path(final, tag)
    try:
        try:
            yield tmp
        except LaleGeoError:
            raise
        except (RasterioError, CPLE_BaseError, OSError, *errors) as e:
            # GDAL's logged errors are not collected here (that is fatal_write_errors' job, for callers
            # that write with GDAL): a journal written beside a reading thread must not catch its messages.
            raise RasterIOError(f"{final}: writing failed ({_first_line(str(e)) or type(e).__name__}); "
                                "nothing was published") from None
        publish(tmp, final, overwrite)
    finally:
        _remove_quietly(tmp, *(tmp.with_name(tmp.name + side) for side in ("-journal", "-wal", "-shm")))


def _holds_data(dataset, nodata, rows: int = 1024) -> bool:
    """Whether band 1 holds a value other than ``nodata`` (read by blocks of rows, stopping at the first)."""
    return any((dataset.read(1, window=Window(0, y, dataset.width, min(rows, dataset.height - y))) != nodata).any()
               for y in range(0, dataset.height, rows))


def _remove_quietly(*paths: Path) -> None:
    """Remove temporary files; one that cannot be removed must not hide the error that ended the run."""
    for path in paths:
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)


def _first_line(text: str) -> str:
    """The first line of a write error (an SQL error quotes its whole statement: that part goes)."""
    return message_line(re.sub(r"sqlite3_exec\(.*\) failed: ", "SQLite: ", text), empty="")


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
            cause = _first_line(gdal.errors[0] if gdal.errors else str(e)) or type(e).__name__
            raise RasterIOError(f"{path}: {doing} failed ({cause}); nothing was published") from None
    if gdal.errors:
        raise RasterIOError(f"{path}: {doing} failed ({_first_line(gdal.errors[0])}); nothing was published")


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
        self._cog = temporary_path(self.path, f"{key or uuid.uuid4().hex[:8]}.cog")
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
            _remove_quietly(*self._pyramid.paths)
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
        _remove_quietly(*self.tmp.parent.glob(glob.escape(self.tmp.name) + ".ovr*"))
