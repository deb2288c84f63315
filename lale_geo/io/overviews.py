"""Overviews of a class map built while its rows are written, so that the COG copy at the end only has
to compress them.

GDAL builds MODE overviews only once the whole map exists, in one serial pass that was most of the time
the COG copy took (benchmarks/cog.py measures both). Here each band of finished rows is
reduced 2x2 -> 1 as it arrives (level 1 from the map, level k + 1 from level k) into temporary files
that a VRT presents to the COG driver as the source's overviews.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.errors import NotGeoreferencedWarning
from rasterio.windows import Window


def overview_sizes(height: int, width: int, block_size: int) -> list[tuple[int, int]]:
    """(height, width) of each overview level as GDAL's COG driver makes them: halved (rounding down)
    until the level fits in one block."""
    sizes = []
    while max(height, width) > block_size:
        height, width = max(height // 2, 1), max(width // 2, 1)
        sizes.append((height, width))
    return sizes


def mode_2x2(rows: np.ndarray, nodata: int | None) -> np.ndarray:
    """(bands, h, w) class ids -> (bands, h // 2, w // 2): the most frequent value of each 2x2 block,
    ``nodata`` ignored unless the block holds nothing else. Ties go to the value that reaches the top
    count first in reading order, as in GDAL's MODE resampling: on even sizes the result is GDAL's,
    pixel for pixel. An odd last row or column is left out (GDAL stretches its windows by w / (w // 2)
    to reach it). A source one pixel thick is reduced by :func:`mode_pairs` instead."""
    rows = rows[:, :rows.shape[1] // 2 * 2, :rows.shape[2] // 2 * 2]
    a, b, c, d = rows[:, 0::2, 0::2], rows[:, 0::2, 1::2], rows[:, 1::2, 0::2], rows[:, 1::2, 1::2]
    # Four values: a wins if it occurs twice or more, except as the pair a = d against the pair b = c,
    # whose second value comes first; otherwise b if it occurs again, then c; all different: a.
    b_c_or_a = np.where((b == c) | (b == d), b, np.where(c == d, c, a))
    out = np.where((a == b) | (a == c) | ((a == d) & (b != c)), a, b_c_or_a)
    if nodata is not None:
        holes = (a == nodata) | (b == nodata) | (c == nodata) | (d == nodata)
        if holes.any():
            out[holes] = _mode_ignoring(np.stack([a[holes], b[holes], c[holes], d[holes]]), nodata)
    return out


def mode_pairs(rows: np.ndarray, nodata: int | None, axis: int) -> np.ndarray:
    """The reduction of a level whose source is one pixel thick along the other axis (GDAL keeps that
    lone row or column and halves only along ``axis``, 1 for rows, 2 for columns): the mode of each pair,
    the first of the two on a tie, ``nodata`` ignored unless both are."""
    even = rows.shape[axis] // 2 * 2
    first = np.take(rows, np.arange(0, even, 2), axis=axis)
    second = np.take(rows, np.arange(1, even, 2), axis=axis)
    return first if nodata is None else np.where(first == nodata, second, first)


def _mode_ignoring(values: np.ndarray, nodata: int) -> np.ndarray:
    """Mode of each column of (4, n) values with ``nodata`` not counted (nodata where all are); ties to
    the value whose last occurrence comes first (the first to reach the top count)."""
    valid = values != nodata
    same = (values[:, None] == values[None]) & valid[:, None] & valid[None]  # (4, 4, n)
    counts = same.sum(axis=1)
    last = np.where(same, np.arange(4)[None, :, None], -1).max(axis=1)
    best = (counts * 8 - last).argmax(axis=0)
    return np.where(valid.any(axis=0), values[best, np.arange(values.shape[1])], nodata).astype(values.dtype)


class OverviewPyramid:
    """Temporary files holding the MODE overviews of a map whose rows arrive in order (``add``); after
    ``finish``, ``vrt(base, path)`` writes a VRT of ``base`` that carries them as its overviews."""

    def __init__(self, base: Path, profile: dict, block_size: int) -> None:
        self.nodata = None if profile.get("nodata") is None else int(profile["nodata"])
        self.paths: list[Path] = []
        self._datasets: list[rasterio.io.DatasetWriter] = []
        self._pending: list[np.ndarray | None] = []
        self._next_row: list[int] = []
        self._source_shape: list[tuple[int, int]] = []  # (height, width) of what each level is reduced from
        try:
            self._create(base, profile, block_size)
        except BaseException:
            self.close()  # the caller never gets this pyramid to close
            raise

    def _create(self, base: Path, profile: dict, block_size: int) -> None:
        transform = profile["transform"]
        sizes = overview_sizes(profile["height"], profile["width"], block_size)
        self._source_shape = [(profile["height"], profile["width"]), *sizes[:-1]]
        for level, (height, width) in enumerate(sizes, 1):
            path = base.with_name(f"{base.name}.ovr{level}")
            scale = 2 ** level
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                self._datasets.append(rasterio.open(
                    path, "w", driver="GTiff", width=width, height=height, count=profile["count"],
                    dtype=profile["dtype"], nodata=profile.get("nodata"), crs=profile.get("crs"),
                    transform=transform @ Affine.scale(scale), tiled=False, blockysize=16,
                    compress="ZSTD", zstd_level=1, BIGTIFF="IF_SAFER"))
            self.paths.append(path)
            self._pending.append(None)
            self._next_row.append(0)

    def add(self, rows: np.ndarray) -> None:
        """The next (bands, n, width) rows of the map."""
        self._feed(0, rows)

    def _feed(self, level: int, rows: np.ndarray) -> None:
        if level == len(self._datasets):
            return
        source_height, source_width = self._source_shape[level]
        if source_height == 1:  # a lone row: halved along it only
            self._write(level, mode_pairs(rows, self.nodata, axis=2))
            return
        if self._pending[level] is not None:
            rows = np.concatenate([self._pending[level], rows], axis=1)
        even = rows.shape[1] - rows.shape[1] % 2
        self._pending[level] = rows[:, even:].copy() if even < rows.shape[1] else None
        if even:
            pairs = rows[:, :even]
            reduced = mode_pairs(pairs, self.nodata, axis=1) if source_width == 1 else mode_2x2(pairs, self.nodata)
            self._write(level, reduced)

    def _write(self, level: int, reduced: np.ndarray) -> None:
        dataset, y0 = self._datasets[level], self._next_row[level]
        dataset.write(reduced, window=Window(0, y0, reduced.shape[2], reduced.shape[1]))
        self._next_row[level] = y0 + reduced.shape[1]
        self._feed(level + 1, reduced)

    def finish(self) -> None:
        """Close the files (an odd last row left pending is not part of the next level: sizes round down)."""
        self.close()
        for dataset, rows in zip(self._datasets, self._next_row):
            if rows != dataset.height:  # a bug, never a user error
                raise RuntimeError(f"overview {dataset.name}: {rows} of {dataset.height} rows written")

    def close(self) -> None:
        for dataset in self._datasets:
            if not dataset.closed:
                dataset.close()

    def vrt(self, base: Path, path: Path) -> Path:
        """A VRT of ``base`` (all its metadata) whose bands list the overview files."""
        rasterio.shutil.copy(base, path, driver="VRT")
        xml = path.read_text()
        bands = xml.count("</VRTRasterBand>")
        for band in range(1, bands + 1):
            overviews = "".join(f'<Overview><SourceFilename relativeToVRT="0">{escape(str(p.resolve()))}'
                                f"</SourceFilename><SourceBand>{band}</SourceBand></Overview>" for p in self.paths)
            head, _, tail = xml.partition(f'band="{band}"')
            close = tail.index("</VRTRasterBand>")
            xml = f'{head}band="{band}"{tail[:close]}{overviews}{tail[close:]}'
        path.write_text(xml)
        return path
