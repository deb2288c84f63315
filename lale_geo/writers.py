"""Raster output and the one fault-safe publish step: outputs are written under hidden temporary
names beside their target and published by :func:`publish` once complete, so an interrupted run never
leaves a half-written file under a final name, and nothing is replaced without ``overwrite``."""

from __future__ import annotations

import contextlib
import os
import uuid
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.errors import NotGeoreferencedWarning
from rasterio.windows import Window

from .errors import InvalidInputError, OutputExistsError
from .raster import is_remote
from .stitching import OUTPUT_NODATA

__all__ = ["OUTPUT_NODATA", "RasterWriter", "check_output", "publish", "published", "temporary_path"]


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
    return path


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


@contextlib.contextmanager
def published(final: str | Path, overwrite: bool = False, tag: str | None = None) -> Iterator[Path]:
    """Context manager for a whole-file output: yields a temporary path to write, publishes it to
    ``final`` when the block ends without error, removes it otherwise.

    Example:
        >>> with published("item.json", overwrite=False) as tmp:
        ...     tmp.write_text(text)
    """
    tmp = temporary_path(final, tag)
    try:
        yield tmp
        publish(tmp, final, overwrite)
    finally:
        tmp.unlink(missing_ok=True)


class RasterWriter:
    """Writes rows of a raster to a hidden temporary file beside the target, then publishes it as a
    COG (tiled, compressed, overviews) under the final name in one rename. Until ``commit`` nothing
    exists under the final name; ``abort`` removes the temporary file.

    Each ``write_rows`` reaches the disk before it returns (the file is reopened per write), so a run
    killed at any point keeps every row written so far: with ``key`` (a digest of the run's inputs
    and parameters) the temporary name is stable and ``resume=True`` continues in the same file.
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
        if resume and self.tmp.exists():
            return
        # Untiled strips with fast ZSTD: rows are written in order, so strips are never re-read.
        profile = dict(profile, driver="GTiff", tiled=False, compress="ZSTD", zstd_level=1,
                       blockysize=16, BIGTIFF="IF_SAFER")
        profile.pop("blockxsize", None)
        with self._open("w", **profile) as dst:
            if colormap:
                dst.write_colormap(1, colormap)
            if tags:
                dst.update_tags(**{k: str(v) for k, v in tags.items()})
            for i, description in enumerate(band_descriptions, start=1):
                dst.set_band_description(i, description)

    def _open(self, mode: str, **profile):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            return rasterio.open(self.tmp, mode, **profile)

    def write_rows(self, y0: int, data: np.ndarray) -> None:
        """Write (bands, rows, width) or (rows, width) data starting at scene row ``y0``."""
        data = data if data.ndim == 3 else data[None]
        with self._open("r+") as dst:
            dst.write(data, window=Window(0, y0, data.shape[2], data.shape[1]))

    def commit(self) -> Path:
        try:
            rasterio.shutil.copy(self.tmp, self._cog, driver="COG", COMPRESS=self._compress,
                                 BLOCKSIZE=512, OVERVIEW_RESAMPLING=self._overview_resampling,
                                 NUM_THREADS="ALL_CPUS", BIGTIFF="IF_SAFER")
            publish(self._cog, self.path, self.overwrite)
        finally:
            self.abort()
        return self.path

    def abort(self) -> None:
        """Remove the temporary files."""
        for p in (self.tmp, self._cog):
            p.unlink(missing_ok=True)
