"""A bounded, checked sample of a scene's pixels: what per-scene scaling and the domain guard measure.

Both used to read the whole scene decimated (``read(out_shape=...)``): on a file without overviews GDAL
decodes every block for that (over HTTP it fetches the whole file) before the first tile, and those
reads were unchecked. The sample is read once, through :func:`checked_read`, from an overview level
when the file has one (it covers the whole scene at a small cost), else from a fixed number of windows
spread over the scene, aligned to the file's blocks (4 % of them, 4 to 16): the bytes read before the
first tile do not grow with the scene.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from rasterio.windows import Window

from .raster import checked_read, window_name

MAX_WINDOWS = 16  # windows read at most (of about one block each)
MIN_WINDOWS = 4  # and at least: one window is too local a sample to stretch a small scene by
BLOCK_SHARE = 0.04  # of the file's blocks, so that what is read before the first tile stays under 5 %
MIN_OVERVIEW_SIDE = 512  # the coarsest overview level whose long side still has this many pixels
MAX_PIXELS = 1 << 20  # valid pixels kept per band (an even subsample beyond): percentiles need no more


@dataclass(frozen=True)
class SceneSample:
    """Valid pixels (bands, N) of the scene in their raw values, and what they were read from."""

    pixels: np.ndarray
    source: str


def _valid(data: np.ma.MaskedArray) -> np.ndarray:
    """(bands, N) pixels valid in every band (GDAL's mask and, for floats, finite)."""
    values = np.ma.getdata(data)
    valid = ~np.ma.getmaskarray(data).any(axis=0)
    if np.issubdtype(values.dtype, np.floating):
        valid &= np.isfinite(values).all(axis=0)
    return values[:, valid]


def _thinned(pixels: np.ndarray) -> np.ndarray:
    """At most MAX_PIXELS pixels, an even subsample."""
    step = -(-pixels.shape[1] // MAX_PIXELS)
    return pixels[:, ::step] if step > 1 else pixels


def _overview_factor(src, band: int) -> int | None:
    factors = [f for f in src.overviews(band) if max(src.width, src.height) / f >= MIN_OVERVIEW_SIDE]
    return max(factors) if factors else None


def sample_windows(src, band: int, most: int = MAX_WINDOWS, share: float = BLOCK_SHARE) -> list[Window]:
    """Block-aligned windows of about one block (32-512 px a side), spread over the scene on a lattice:
    ``share`` of the file's blocks, at least MIN_WINDOWS (fewer only where the scene has fewer blocks) and
    at most ``most``: a large file gets a sample that covers it, and what is read before its first tile does
    not grow with it."""
    bh, bw = src.block_shapes[band - 1]
    h, w = min(max(bh, 32), 512, src.height), min(max(bw, 32), 512, src.width)
    blocks = -(-src.height // h) * -(-src.width // w)
    count = min(blocks, max(MIN_WINDOWS, min(most, math.ceil(share * blocks))))
    side = math.ceil(math.sqrt(count))
    cells = [(i, (j + i) % side) for i in range(side) for j in range(side)]  # each row starts one cell on
    cells = [cells[round(k * len(cells) / count)] for k in range(count)]  # an even pick: spread both ways
    windows = []
    for i, j in cells:
        cy, cx = int((i + 0.5) * src.height / side), int((j + 0.5) * src.width / side)
        y = min(cy // bh * bh, src.height - h)
        x = min(cx // bw * bw, src.width - w)
        window = Window(x, y, w, h)
        if window not in windows:
            windows.append(window)
    return windows


def sample_scene(src, bands: Sequence[int]) -> SceneSample:
    """The scene's sample (see the module's docstring); every read fails loudly, naming its window or
    overview level."""
    bands = list(bands)
    factor = _overview_factor(src, bands[0])
    if factor is not None:
        shape = (len(bands), -(-src.height // factor), -(-src.width // factor))
        level = src.overviews(bands[0]).index(factor) + 1
        with checked_read(src, f"overview level {level} (1/{factor}, {shape[2]}x{shape[1]} px)"):
            data = src.read(bands, out_shape=shape, masked=True)
        return SceneSample(_thinned(_valid(data)), f"overview level {level} (1/{factor})")
    parts = []
    windows = sample_windows(src, bands[0])
    for window in windows:
        where = window_name(window)
        with checked_read(src, where):
            parts.append(_valid(src.read(bands, window=window, masked=True)))
    size = f"{windows[0].width}x{windows[0].height}"
    what = f"{len(windows)} windows" if len(windows) > 1 else "1 window"
    return SceneSample(_thinned(np.concatenate(parts, axis=1)), f"{what} of {size} px")
