"""Scoring weights on labelled images, tiled exactly as ``predict`` tiles a scene, with how sure the
scores are: per-image and per-tile macro F1, a bootstrap interval over images, and how much the map
depends on the tile grid (tiled vs untiled, and a shifted grid)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from ..inference.engines import Engine
from ..inference.grid import TileGrid
from ..inference.stitching import Band
from ..inference.tile_loop import ArraySource, RasterSource, predict_region, stream_scene
from ..io.scaling import Scale
from .datasets import RasterSample, Sample, open_image
from .metrics import IGNORE_INDEX, confusion_matrix, scores

BOOTSTRAP_RESAMPLES = 1000
GRID_SHIFT = 200  # px: moves every tile edge off its place for the tile sizes we use (256, 512)


@dataclass(frozen=True)
class Tiling:
    """How images are cut: ``tile_size`` and ``overlap`` as in predict, ``batch_size`` tiles per call."""

    tile_size: int
    overlap: int
    batch_size: int = 8


@dataclass(frozen=True)
class ClassScores:
    iou: float
    f1: float
    precision: float
    recall: float
    support: int  # labelled pixels of the class


@dataclass(frozen=True)
class Evaluation:
    """Scores of weights on labelled images (:func:`evaluate`); :meth:`to_dict` is the JSON form.

    ``per_tile`` holds ``tiles``, ``tile_size``, ``mean``, ``median``, ``p10`` (None when no image has a
    whole tile cell); ``agreement`` holds ``tiled_vs_untiled``, ``shifted_grid``, ``shift_px`` (None
    unless asked for); ``macro_f1_ci95`` is None with fewer than two images."""

    macro_f1: float
    miou: float
    pixel_accuracy: float
    per_class: dict[str, ClassScores]
    confusion_matrix: list[list[int]]  # rows = truth, columns = prediction
    per_image: dict[str, float]  # macro F1 of each image
    macro_f1_ci95: tuple[float, float] | None = None
    per_tile: dict[str, float] | None = None
    agreement: dict[str, float] | None = None

    def to_dict(self) -> dict:
        """The JSON form: ``per_tile`` and ``agreement`` only where they were measured."""
        data = asdict(self)
        for key in ("per_tile", "agreement"):
            if data[key] is None:
                del data[key]
        return data


def evaluate(engine: Engine, samples: Sequence[Sample | RasterSample], class_names: list[str], tiling: Tiling,
             *, mean: Sequence[float], input_range: Sequence[float] = (0, 255),
             whole_image: Engine | None = None) -> Evaluation:
    """Scores on whole images, tiled and blended as ``predict`` does (invalid pixels are filled as
    predict fills them and not scored); images read by windows are streamed row band by row band.

    Besides the pooled scores (see :func:`lale_geo.training.metrics.scores`) the result holds ``per_image``
    (macro F1 of each image), ``per_tile`` (macro F1 over the non-overlapping ``tile_size`` cells of every
    image: mean, median, 10th percentile) and ``macro_f1_ci95`` (a bootstrap over images). With
    ``whole_image`` (an engine that takes any image size, e.g. torch) it adds ``agreement``: the share of
    labelled pixels whose class is the same tiled and untiled, and tiled on the grid and on a grid
    shifted by ``GRID_SHIFT`` px (in-memory images only).
    """
    n = engine.num_classes
    scale = Scale.of(*input_range)
    fill = scale.fill(mean)
    per_image_cm, per_tile_f1, names = [], [], []
    same_untiled = same_shifted = compared = 0
    for s in samples:
        names.append(s.name)
        if isinstance(s, RasterSample):
            per_image_cm.append(_streamed_confusion(engine, s, scale, fill, tiling))
            continue
        labels = tiled_labels(engine, s.image, s.valid, fill, scale, tiling)
        per_image_cm.append(confusion_matrix(labels, s.mask, n))
        per_tile_f1 += _cell_scores(labels, s.mask, n, tiling.tile_size)
        if whole_image is not None:
            scored = s.mask != IGNORE_INDEX
            untiled = _untiled_labels(whole_image, s.image, s.valid, fill, scale)
            shifted = _shifted_labels(engine, s.image, s.valid, fill, scale, tiling)
            same_untiled += int((labels == untiled)[scored].sum())
            same_shifted += int((labels == shifted)[scored].sum())
            compared += int(scored.sum())
    pooled = scores(np.sum(per_image_cm, axis=0), class_names)
    per_tile = agreement = None
    if per_tile_f1:
        cells = np.asarray(per_tile_f1)
        per_tile = {"tiles": len(cells), "tile_size": tiling.tile_size, "mean": float(cells.mean()),
                    "median": float(np.median(cells)), "p10": float(np.percentile(cells, 10))}
    if compared:
        agreement = {"tiled_vs_untiled": same_untiled / compared, "shifted_grid": same_shifted / compared,
                     "shift_px": GRID_SHIFT}
    interval = bootstrap_interval(per_image_cm, class_names)
    return Evaluation(
        macro_f1=pooled["macro_f1"], miou=pooled["miou"], pixel_accuracy=pooled["pixel_accuracy"],
        per_class={name: ClassScores(**s) for name, s in pooled["per_class"].items()},
        confusion_matrix=pooled["confusion_matrix"],
        per_image={name: scores(cm, class_names)["macro_f1"] for name, cm in zip(names, per_image_cm)},
        macro_f1_ci95=None if interval is None else (interval[0], interval[1]), per_tile=per_tile,
        agreement=agreement)


def bootstrap_interval(per_image_cm: Sequence[np.ndarray], class_names: list[str],
                       resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> list[float] | None:
    """95 % percentile interval of the pooled macro F1 when the images are resampled with replacement
    (images, not pixels, are the independent units: neighbouring pixels are strongly correlated)."""
    if len(per_image_cm) < 2:
        return None
    stack = np.stack(per_image_cm)
    rng = np.random.default_rng(seed)
    values = [scores(stack[rng.integers(0, len(stack), len(stack))].sum(0), class_names)["macro_f1"]
              for _ in range(resamples)]
    low, high = np.nanpercentile(values, [2.5, 97.5])
    return [float(low), float(high)]


def tiled_labels(engine: Engine, image: np.ndarray, valid, fill, scale, tiling: Tiling) -> np.ndarray:
    """Class ids of a whole (bands, H, W) image tiled and blended as predict does (``valid``: None or (H, W))."""
    _, H, W = image.shape
    grid = TileGrid(H, W, tiling.tile_size, tiling.overlap)
    source = ArraySource(image, valid, fill)
    return predict_region(source, grid, (0, 0, H, W), engine, scale, tiling.batch_size).argmax(0)


def _shifted_labels(engine: Engine, image: np.ndarray, valid, fill, scale, tiling: Tiling) -> np.ndarray:
    """Labels from a grid moved by GRID_SHIFT px: the image reflect-padded above and left, cropped back."""
    k = GRID_SHIFT
    padded = np.pad(image, ((0, 0), (k, 0), (k, 0)), mode="reflect")
    padded_valid = None if valid is None else np.pad(valid, ((k, 0), (k, 0)), mode="reflect")
    return tiled_labels(engine, padded, padded_valid, fill, scale, tiling)[k:, k:]


def _untiled_labels(engine: Engine, image: np.ndarray, valid, fill, scale) -> np.ndarray:
    """The whole image in one network call (what tiling approximates)."""
    if valid is not None and not valid.all():
        image = np.where(valid[None], image, np.asarray(fill, np.float32)[:, None, None])
    return engine(image[None].astype(np.float32), scale)[0].argmax(0)


def _cell_scores(labels: np.ndarray, truth: np.ndarray, n: int, size: int) -> list[float]:
    """Macro F1 of each full ``size`` x ``size`` cell of an image with labelled pixels in it."""
    out = []
    H, W = truth.shape
    for y in range(0, H - size + 1, size):
        for x in range(0, W - size + 1, size):
            cm = confusion_matrix(labels[y:y + size, x:x + size], truth[y:y + size, x:x + size], n)
            if cm.sum():
                out.append(scores(cm)["macro_f1"])
    return out


def _streamed_confusion(engine: Engine, sample: RasterSample, scale: Scale, fill: list[float],
                        tiling: Tiling) -> np.ndarray:
    cm = np.zeros((engine.num_classes,) * 2, np.int64)

    def score(band: Band) -> None:
        rows = band.logits.shape[1]
        truth = sample.read_mask(band.y0, 0, rows, sample.shape[1])
        cm[...] += confusion_matrix(band.logits.argmax(0), truth, engine.num_classes)

    with open_image(sample.image_path) as scene:
        grid = TileGrid(*sample.shape, tiling.tile_size, tiling.overlap)
        stream_scene(RasterSource(scene, sample.band_indexes, fill), grid, engine, scale, tiling.batch_size, score)
    return cm
