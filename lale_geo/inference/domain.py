"""Domain guard: warn (or refuse, with ``--strict-domain``) when a scene is clearly unlike the data the
weights were trained on.

Its one job is that comparison. The weights card may carry a :class:`DomainProfile` under ``"domain"``:
the sensor, the ground pixel size range and the image statistics of the training data, on [0, 1]-scaled
values as the network sees them. Before any compute, :func:`guard` measures the scene (pixel size from
its grid, statistics from a small decimated read) and returns one-line warnings for what is clearly
outside. A card without a profile is not checked. The classic failure this catches: a 10 m Sentinel-2
scene fed to weights trained on sub-metre imagery gives a meaningless map.

Example:
    >>> for warning in guard(card, src, bands, scaling, strict=False):
    ...     log.warning(warning)
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from rasterio.errors import CRSError

from ..errors import InvalidInputError, WeightsError
from ..io.scaling import Scaling, decide_scaling, fixed_scaling
from ..io.scene_sample import SceneSample, sample_scene

if TYPE_CHECKING:  # type hints only: the guard needs just .low/.high of a scaling and an open dataset
    import rasterio
    from affine import Affine
    from rasterio.crs import CRS

    from ..weights import WeightsCard

PIXEL_SIZE_FACTOR = 3.0  # a scene this many times finer or coarser than the training range is warned about
MAX_Z = 3.0  # image statistics this many training spreads from the training images' mean are warned about
# Lower bound on a spread: a few training images can agree by chance, and 0.02 is ~5 grey levels of
# 8-bit data, below which a difference is JPEG noise and haze, not another domain.
MIN_SPREAD = 0.02
EARTH_RADIUS_M = 6_371_008.8  # mean radius: degrees to metres within 0.5 %, plenty for a 3x test


class PixelSampled(Protocol):
    """A training sample (``lale_geo.training.datasets`` images): a strided sample of its pixels."""

    def pixel_sample(self, step: int) -> np.ndarray: ...


@dataclass(frozen=True)
class DomainProfile:
    """What the training data of a set of weights looked like.

    Attributes:
        sensor: the imagery in words, e.g. "VHR RGB satellite/aerial (MBRSC, Dubai)".
        pixel_size_m: (min, max) ground pixel size in metres, or None when unknown (no pixel size check).
        pixel_size_note: where the range comes from (a measurement, or only the sensor class).
        value_range: raw (low, high) mapped to [0, 1] for these statistics (the card's input range).
        band_mean: per band, the mean of all training pixels, [0, 1]-scaled.
        band_std: per band, the standard deviation of all training pixels, [0, 1]-scaled.
        image_mean: per band, (mean, sd) across training images of an image's band mean (brightness).
        image_std: per band, (mean, sd) across training images of an image's band std (contrast).
        images: the number of training images behind ``image_mean`` and ``image_std``.
    """

    sensor: str
    pixel_size_m: tuple[float, float] | None
    pixel_size_note: str
    value_range: tuple[float, float]
    band_mean: tuple[float, ...]
    band_std: tuple[float, ...]
    image_mean: tuple[tuple[float, float], ...]
    image_std: tuple[tuple[float, float], ...]
    images: int

    def __post_init__(self) -> None:
        n = len(self.band_mean)
        if not n or not len(self.band_std) == len(self.image_mean) == len(self.image_std) == n:
            raise WeightsError("domain profile: band_mean, band_std, image_mean and image_std need one "
                               "entry per band")
        if self.pixel_size_m is not None and not 0 < self.pixel_size_m[0] <= self.pixel_size_m[1]:
            raise WeightsError(f"domain profile: pixel_size_m must be (min, max) with 0 < min <= max, "
                               f"got {self.pixel_size_m}")

    def to_dict(self) -> dict[str, Any]:
        # Through JSON: lists instead of tuples, so a dict equals its own JSON round trip (as in a card).
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DomainProfile:
        """A profile from its JSON form (a weights card's ``"domain"``).

        Raises:
            WeightsError: missing fields or values of the wrong shape.
        """
        try:
            size = data["pixel_size_m"]
            return cls(
                sensor=str(data["sensor"]),
                pixel_size_m=None if size is None else (float(size[0]), float(size[1])),
                pixel_size_note=str(data.get("pixel_size_note", "")),
                value_range=(float(data["value_range"][0]), float(data["value_range"][1])),
                band_mean=tuple(float(v) for v in data["band_mean"]),
                band_std=tuple(float(v) for v in data["band_std"]),
                image_mean=tuple((float(m), float(s)) for m, s in data["image_mean"]),
                image_std=tuple((float(m), float(s)) for m, s in data["image_std"]),
                images=int(data["images"]),
            )
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise WeightsError(f"domain profile: not valid ({e!r})") from None


def _scaled(pixels: np.ndarray, low: Sequence[float], high: Sequence[float]) -> np.ndarray:
    """(bands, N) raw values to [0, 1] as the engines do it (clipped, so outliers cannot skew the mean)."""
    lo = np.asarray(low, np.float64).reshape(-1, 1)
    hi = np.asarray(high, np.float64).reshape(-1, 1)
    return np.clip((pixels.astype(np.float64) - lo) / (hi - lo), 0.0, 1.0)


def scaled_pixel_sample(sample: PixelSampled, input_range: Sequence[float], step: int = 97) -> np.ndarray:
    """(bands, N) valid pixels of a training sample, about one in ``step``, scaled to [0, 1] by the card's
    ``input_range`` as the engines scale them: the one statistic behind a card's mean/std and its domain
    profile (in-memory samples know their invalid pixels, which are left out)."""
    pixels = sample.pixel_sample(step)
    valid = getattr(sample, "valid", None)
    if valid is not None:
        pixels = pixels[:, valid.reshape(-1)[::step]]
    lo, hi = input_range
    return _scaled(pixels, [lo] * len(pixels), [hi] * len(pixels))


def _spread(values: np.ndarray) -> np.ndarray:
    return values.std(axis=0, ddof=1) if len(values) > 1 else np.zeros(values.shape[1])


def profile_from_samples(samples: Iterable[PixelSampled], input_range: Sequence[float], sensor: str,
                         pixel_size_m: tuple[float, float] | None, note: str, step: int = 97) -> DomainProfile:
    """The profile of a training split, from about one pixel in ``step`` of each sample.

    Args:
        samples: training samples (``lale_geo.training.datasets.load_split``); each gives ``pixel_sample(step)``.
        input_range: raw (low, high) mapped to [0, 1], as in training (the card's ``input_range``).
        sensor: the imagery in words.
        pixel_size_m: (min, max) ground pixel size in metres, or None when unknown.
        note: where ``pixel_size_m`` comes from.
        step: pixel decimation for the statistics.
    """
    lo, hi = input_range
    per_image, pooled = [], []
    for sample in samples:
        scaled = scaled_pixel_sample(sample, input_range, step)
        if scaled.shape[1] == 0:
            continue
        per_image.append((scaled.mean(axis=1), scaled.std(axis=1)))
        pooled.append(scaled)
    if not per_image:
        raise InvalidInputError("domain profile: no valid training pixels")
    means, stds = (np.array(v) for v in zip(*per_image))  # (images, bands) each
    everything = np.concatenate(pooled, axis=1)
    r = lambda values: tuple(round(float(v), 4) for v in values)  # noqa: E731  (tidy JSON)
    return DomainProfile(
        sensor=sensor, pixel_size_m=None if pixel_size_m is None else (float(pixel_size_m[0]), float(pixel_size_m[1])),
        pixel_size_note=note, value_range=(float(lo), float(hi)),
        band_mean=r(everything.mean(axis=1)), band_std=r(everything.std(axis=1)),
        image_mean=tuple(zip(r(means.mean(axis=0)), r(_spread(means)))),
        image_std=tuple(zip(r(stds.mean(axis=0)), r(_spread(stds)))),
        images=len(per_image))


def check_domain(profile: DomainProfile, pixel_size_m: float | None, scaled_band_mean: Sequence[float] | None,
                 scaled_band_std: Sequence[float] | None, band_names: Sequence[str] | None = None) -> list[str]:
    """One-line warnings for what is clearly outside ``profile``; empty when the scene looks in-domain.

    The rules, each skipped when either side is unknown:

    - pixel size: more than 3x finer than the profile's minimum or 3x coarser than its maximum. The
      networks learn objects at a scale; within ~3x, scale-jittered training still covers it.
    - brightness and contrast: a band's scene mean (or std) more than 3 spreads from the mean of the
      training images' means (or stds), the spread being the sd across training images (at least
      ``MIN_SPREAD``). A scene is one image, so it is compared with how whole images varied in training,
      not with how pixels varied within them: pooled pixel stds (~0.3) would let any mean in [0, 1] pass.
      Percentile scaling of non-8-bit scenes evens both out, so these mostly catch 8-bit scenes that are
      very dark, washed out or flat, and a wrong ``--scale`` or band order.

    Args:
        profile: the weights' domain profile.
        pixel_size_m: the scene's ground pixel size, or None when unknown.
        scaled_band_mean: per band, the scene's mean on [0, 1]-scaled values, or None when unknown.
        scaled_band_std: per band, the scene's std on [0, 1]-scaled values, or None when unknown.
        band_names: names for the messages (the card's bands); default "band 1", "band 2", ...
    """
    warnings = []
    if profile.pixel_size_m is not None and pixel_size_m is not None:
        lo, hi = profile.pixel_size_m
        if pixel_size_m > hi * PIXEL_SIZE_FACTOR or pixel_size_m < lo / PIXEL_SIZE_FACTOR:
            side = "coarser" if pixel_size_m > hi else "finer"
            warnings.append(
                f"pixel size {pixel_size_m:.3g} m is over {PIXEL_SIZE_FACTOR:g}x {side} than the weights' training "
                f"data ({lo:g}-{hi:g} m, {profile.sensor}): the map will likely be wrong; resample the scene into "
                "that range or use weights trained at this resolution")
    for what, scene, reference in (("brightness (mean)", scaled_band_mean, profile.image_mean),
                                   ("contrast (std)", scaled_band_std, profile.image_std)):
        if scene is None:
            continue
        if len(scene) != len(reference):
            raise InvalidInputError(f"domain check: the scene has {len(scene)} band(s), the profile "
                                    f"{len(reference)}")
        z = [(s - m) / max(sd, MIN_SPREAD) for s, (m, sd) in zip(scene, reference)]
        worst = int(np.argmax(np.abs(z)))
        if abs(z[worst]) > MAX_Z:
            name = band_names[worst] if band_names else f"band {worst + 1}"
            m, sd = reference[worst]
            warnings.append(
                f"{name} {what} {scene[worst]:.2f} after scaling is {abs(z[worst]):.1f} training spreads "
                f"{'above' if z[worst] > 0 else 'below'} the training images' {m:.2f} +- {sd:.2f} "
                f"({profile.sensor}); check --bands and --scale, or the scene is unlike the training data")
    return warnings


@dataclass(frozen=True)
class SceneStatistics:
    """A scene measured for the domain check: ground pixel size and [0, 1]-scaled band statistics."""

    pixel_size_m: float | None
    band_mean: tuple[float, ...] | None  # None: no valid pixel in the read
    band_std: tuple[float, ...] | None
    pixels: int  # valid pixels behind the statistics


def pixel_size_metres(crs: CRS | None, transform: Affine, height: int, width: int) -> float | None:
    """Ground size of a grid's pixel in metres (the side of a square of the same area); None without a CRS.

    Projected CRSs use their linear unit; geographic ones convert degrees to metres at the latitude of
    the grid's centre (on a sphere: close enough for a check with a factor-3 tolerance).

    Example:
        >>> pixel_size_metres(src.crs, src.transform, src.height, src.width)
        10.0
    """
    if crs is None:
        return None
    t = transform
    # Lengths of a pixel's column and row steps: right for rotated grids too.
    sx, sy = math.hypot(t.a, t.d), math.hypot(t.b, t.e)
    try:
        _, factor = crs.units_factor  # to metres (projected) or to radians (geographic)
    except CRSError:  # an engineering or otherwise odd CRS: the size is unknown, not wrong
        return None
    if crs.is_geographic:
        latitude = (t.d * width / 2 + t.e * height / 2 + t.f) * factor  # y of the grid centre
        sx *= factor * EARTH_RADIUS_M * math.cos(latitude)
        sy *= factor * EARTH_RADIUS_M
    else:
        sx, sy = sx * factor, sy * factor
    return math.sqrt(sx * sy)


def scene_statistics(src: rasterio.DatasetReader, bands: Sequence[int], scaling: Scaling,
                     sample: SceneSample | None = None) -> SceneStatistics:
    """Pixel size and per-band mean/std of the scene's valid pixels, [0, 1]-scaled by ``scaling``.

    The statistics come from the scene's bounded sample (``sample``, read here when not given), the same
    one the per-scene scaling is decided from; invalid pixels (nodata, alpha, GDAL mask, NaN in any band)
    are left out.
    """
    sample = sample if sample is not None else sample_scene(src, bands)
    size = pixel_size_metres(src.crs, src.transform, src.height, src.width)
    pixels = sample.pixels.astype(np.float64)  # (bands, N)
    if pixels.shape[1] == 0:
        return SceneStatistics(size, None, None, 0)
    scaled = _scaled(pixels, scaling.low, scaling.high)
    return SceneStatistics(size, tuple(map(float, scaled.mean(axis=1))),
                           tuple(map(float, scaled.std(axis=1))), int(pixels.shape[1]))


def guard(card: WeightsCard | Any, src: rasterio.DatasetReader, bands: Sequence[int], scaling: Scaling,
          strict: bool = False, sample: SceneSample | None = None, name: str | None = None) -> list[str]:
    """Warnings for a scene unlike the weights' training data; none when the card carries no profile.

    Args:
        card: the weights card; its ``domain`` (a :class:`DomainProfile` as a dict) drives the checks.
        src: the open scene.
        bands: 1-based band indexes feeding the model, in the card's order.
        scaling: the scene's value scaling (``low``/``high`` per band), decided before.
        strict: raise instead of returning warnings.
        sample: the scene's bounded sample, if already read (see :mod:`lale_geo.io.scene_sample`).
        name: the scene as the user named it (default ``src.name``; band files read through a VRT name
            the files, not the VRT).

    Raises:
        InvalidInputError: with ``strict``, the first warning plus "(strict_domain=True)".
        WeightsError: the card's profile is not valid.
    """
    data = getattr(card, "domain", None)
    if not data:
        return []
    profile = DomainProfile.from_dict(data)
    stats = scene_statistics(src, bands, scaling, sample)
    names = getattr(card, "bands", None)
    return _finish(check_domain(profile, stats.pixel_size_m, stats.band_mean, stats.band_std, names),
                   name or src.name, strict)


def guard_grid(card: WeightsCard | Any, crs: CRS | None, transform: Affine, height: int, width: int,
               strict: bool = False, name: str = "scene") -> list[str]:
    """The pixel size check of :func:`guard` from a grid alone, reading no pixels: for lazy (Dask) arrays,
    where measuring statistics would compute them. Arguments and errors as for :func:`guard`."""
    data = getattr(card, "domain", None)
    if not data:
        return []
    size = pixel_size_metres(crs, transform, height, width)
    return _finish(check_domain(DomainProfile.from_dict(data), size, None, None), name, strict)


def _finish(warnings: list[str], name: str, strict: bool) -> list[str]:
    warnings = [f"{name}: {w}" for w in warnings]
    if strict and warnings:
        raise InvalidInputError(f"{warnings[0]} (strict_domain=True)")
    return warnings


def scene_scaling(card: WeightsCard | Any, scene: rasterio.DatasetReader, bands: Sequence[int],
                  scale: tuple | None, strict: bool, name: str) -> tuple[Scaling, list[str]]:
    """A scene's scaling and the domain guard's warnings, as ``predict`` decides them (``segment`` on a path
    too): one bounded sample of the scene serves both, read only if either needs it. ``name``: the scene
    as the user gave it (not the VRT of its band files)."""
    dtype = scene.dtypes[bands[0] - 1]
    needs_sample = card.domain or fixed_scaling(dtype, len(bands), card.input_range, scale) is None
    sample = sample_scene(scene, bands) if needs_sample else None
    scaling = decide_scaling(scene, bands, card.input_range, scale, sample)
    return scaling, guard(card, scene, bands, scaling, strict=strict, sample=sample, name=name)
