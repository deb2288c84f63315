"""Value scaling: which raw values map to the network's [0, 1] input, decided once per scene (never per
tile: per-tile rules create seams), and the fill value that masked pixels get."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import rasterio

from ..errors import InvalidInputError
from .raster import valid_pixels
from .scene_sample import SceneSample, sample_scene


class Scale(NamedTuple):
    """What the engines take: raw ``low`` maps to 0 and ``high`` to 1 (clipped), one value per band or one
    for all (float64 arrays that broadcast over the bands)."""

    low: np.ndarray
    high: np.ndarray

    @classmethod
    def of(cls, low, high) -> Scale:
        return cls(np.asarray(low, np.float64), np.asarray(high, np.float64))

    def fill(self, mean: Sequence[float]) -> list[float]:
        """Raw values that normalise to zero (to float32 rounding) under this scale and the card's ``mean``: what masked
        pixels are filled with, so they do not push the network."""
        low, high = (np.broadcast_to(v, (len(mean),)) for v in self)
        return [float(lo + m * (hi - lo)) for lo, hi, m in zip(low, high, mean)]


@dataclass(frozen=True)
class Scaling:
    """Raw value range per band mapped to [0, 1] before normalisation, decided once per scene, and the rule
    that decided it."""

    low: tuple[float, ...]
    high: tuple[float, ...]
    rule: str

    @property
    def scale(self) -> Scale:
        return Scale.of(self.low, self.high)

    def describe(self) -> str:
        pairs = ", ".join(f"{lo:g}-{hi:g}" for lo, hi in zip(self.low, self.high))
        return f"{self.rule}: {pairs}"


def fixed_scaling(dtype, n: int, input_range: Sequence[float], scale=None) -> Scaling | None:
    """The scaling that needs no look at the data, if any: ``--scale`` (numbers or one per band); the
    card's range when the weights were trained on raw values of another range; uint8 as is for an 8-bit
    model. None: the data must be sampled (``percentile_scaling``)."""
    if scale is not None:
        sizes = [np.size(v) for v in scale]
        if any(size not in (1, n) for size in sizes):
            raise InvalidInputError(f"scale={scale[0]},{scale[1]}: {max(sizes)} values for {n} band(s); give one "
                                    "number for all bands or one per band")
        lo, hi = (np.broadcast_to(np.asarray(v, np.float64).reshape(-1), (n,)) for v in scale)
        if not (np.isfinite(lo).all() and np.isfinite(hi).all()):  # inf/nan would scale every pixel to nan
            raise InvalidInputError(f"scale={scale[0]},{scale[1]}: MIN and MAX must be finite numbers")
        if not (lo < hi).all():
            raise InvalidInputError(f"scale={scale[0]},{scale[1]}: MIN must be below MAX")
        return Scaling(tuple(map(float, lo)), tuple(map(float, hi)), "user --scale")
    low, high = input_range
    if (low, high) != (0, 255):
        return Scaling((float(low),) * n, (float(high),) * n, "weights' input range")
    if np.dtype(dtype) == np.uint8:
        return Scaling((0.0,) * n, (255.0,) * n, "uint8 as is")
    return None


def percentile_scaling(valid_values: Sequence[np.ndarray], sample: str) -> Scaling:
    """Per-band 2-98 % percentiles of each band's valid values (1-D arrays), ``sample`` says of what."""
    n = len(valid_values)
    if any(v.size == 0 for v in valid_values):
        return Scaling((0.0,) * n, (1.0,) * n, "no valid pixels")
    low, high = [], []
    for values in valid_values:
        p2, p98 = np.percentile(values.astype(np.float64), [2, 98])
        low.append(float(p2))
        high.append(float(p98) if p98 > p2 else float(p2) + 1.0)
    return Scaling(tuple(low), tuple(high), f"per-band 2-98 % percentiles of {sample}")


def decide_scaling(src: rasterio.DatasetReader, bands: Sequence[int], input_range: Sequence[float],
                   scale: tuple[float, float] | None = None, sample: SceneSample | None = None) -> Scaling:
    """Per-scene value scaling: ``fixed_scaling``, else ``percentile_scaling`` of the scene's bounded sample
    (``sample``, read here when not given; see :mod:`lale_geo.io.scene_sample`)."""
    fixed = fixed_scaling(src.dtypes[bands[0] - 1], len(bands), input_range, scale)
    if fixed is not None:
        return fixed
    sample = sample if sample is not None else sample_scene(src, bands)
    return percentile_scaling(list(sample.pixels), sample.source)


def sample_scaling(sample: np.ndarray, nodata, input_range: Sequence[float], scale=None) -> Scaling:
    """Per-scene scaling of an in-memory (bands, h, w) ``sample`` of the scene (e.g. a strided read of a
    Dask array), by the same rule as :func:`decide_scaling`."""
    fixed = fixed_scaling(sample.dtype, sample.shape[0], input_range, scale)
    if fixed is not None:
        return fixed
    valid = valid_pixels(sample, nodata)
    return percentile_scaling(list(sample[:, valid]), "a strided sample")


def fill_values(scale, mean: Sequence[float]) -> list[float]:
    """``Scale.of(*scale).fill(mean)``: the name of 0.1, kept for one release."""
    return Scale.of(*scale).fill(mean)
