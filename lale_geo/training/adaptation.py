"""Adapt weights to a new area from a few labelled images: a short, regularised fine-tuning that is kept
only where it beats the starting weights on held-out windows of the user's own images.

The data: a folder with ``images/`` and ``masks/`` (or ``labels/``), in it or in sub-folders. A label is a
raster on the image's grid (class ids of the weights, 255 = unlabelled, or the values/colours of a
``classes.json`` beside them) or polygons (GeoPackage, GeoJSON) with a class column (names or ids),
rasterised on the image's grid.

Validation: a quarter of each image is held out (the corner quarter whose least-covered class is best
covered), so that every class labelled in an image is both trained and scored. The starting weights are
scored on the same windows; the fine-tuned weights are kept only if they score higher.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import __version__
from ..errors import DatasetError
from ..inference.domain import pixel_size_metres, profile_from_samples
from ..inference.engines import TorchEngine
from ..weights import WeightsCard, load_weights, save_weights
from .datasets import (
    IGNORE_INDEX,
    IMAGE_SUFFIXES,
    ClassTable,
    Sample,
    _same_grid,
    decode_mask,
    labelled_sample,
    open_image,
    split_folders,
)
from .evaluation import Tiling, evaluate
from .trainer import CropSampler, segmentation_loss

log = logging.getLogger(__name__)

VECTOR_SUFFIXES = (".gpkg", ".geojson", ".json", ".shp", ".fgb")
LABEL_FOLDERS = ("masks", "labels")


@dataclass(frozen=True)
class Recipe:
    """How the starting weights are fine-tuned. The defaults were chosen with ``benchmarks/adapt.py`` on
    flair-dev, scoring held-out quarters and images left out of the adaptation: training the whole network
    fitted the images it saw best (held-out quarters 0.84) but lost ground on an image it never saw, while
    the decoder alone, with the encoder's normalisation statistics following the new images, scored 0.72 on
    the quarters and raised the unseen image most. A class the user labels nowhere fades either way;
    ``distillation`` (a pull toward the starting weights' predictions) keeps part of it, at a cost elsewhere."""

    lr: float = 1e-3
    steps: int = 200
    batch_size: int = 8
    crop: int = 192
    strong_photometric: bool = False  # per-band gain, saturation, gamma, noise on top of brightness/contrast
    frozen_batchnorm: bool = False  # True: keep the starting normalisation statistics
    distillation: float = 0.0  # weight of a per-pixel KL term toward the starting weights' predictions
    freeze: tuple[str, ...] = ("encoder.",)  # parameter name prefixes kept fixed: the encoder's weights
    weight_decay: float = 0.01
    warmup: float = 0.05
    validate_every: int = 50
    seed: int = 0


@dataclass
class AdaptResult:
    """What ``adapt`` measured and kept."""

    kept: str  # "adapted" or "start"
    start_f1: float
    adapted_f1: float
    best_step: int
    steps: int
    seconds: float
    start_per_class: dict[str, float] = field(default_factory=dict)
    adapted_per_class: dict[str, float] = field(default_factory=dict)
    card: WeightsCard | None = None
    train: list[Sample] = field(default_factory=list, repr=False)  # the windows trained on
    val: list[Sample] = field(default_factory=list, repr=False)  # the held-out quarters

    def describe(self) -> str:
        verdict = "kept the adapted weights" if self.kept == "adapted" else "kept the starting weights"
        return (f"{verdict}: held-out macro F1 {self.start_f1:.3f} (start) -> {self.adapted_f1:.3f} (adapted, "
                f"step {self.best_step} of {self.steps}, {self.seconds / 60:.1f} min)")


# ----------------------------------------------------------------------------- data


def table_for(card: WeightsCard, data_root: str | Path) -> ClassTable:
    """The class table of the user's labels: ``classes.json`` in the folder (its classes must be the
    weights'), else the weights' classes as label values 0..N-1 with 255 unlabelled."""
    own = Path(data_root) / "classes.json"
    if own.is_file():
        table = ClassTable.read(own)
        if tuple(table.class_names) != tuple(card.class_names):
            raise DatasetError(f"{own}: classes {list(table.class_names)} are not the weights' "
                               f"{list(card.class_names)} (same names, same order)")
        return table
    return ClassTable(name=Path(data_root).name, class_names=tuple(card.class_names),
                      colours=tuple(c.colour for c in card.classes), values=tuple(range(card.num_classes)),
                      ignore_colours=(), ignore_values=(IGNORE_INDEX,), splits={}, bands=tuple(card.bands),
                      input_range=card.input_range)


def _label_file(folder: Path, stem: str) -> Path:
    for sub in LABEL_FOLDERS:
        found = sorted(p for p in (folder / sub).glob(stem + ".*")
                       if p.suffix.lower() in IMAGE_SUFFIXES + VECTOR_SUFFIXES)
        if found:
            return found[0]
    raise DatasetError(f"{folder / 'images' / stem}: no label {stem}.* in {folder / 'masks'} or {folder / 'labels'}")


def rasterise_polygons(path: Path, image_path: Path, table: ClassTable, column: str | None = None) -> np.ndarray:
    """Class ids (uint8, 255 unlabelled) of polygons burnt on the image's grid; later polygons win."""
    import geopandas as gpd
    from rasterio.features import rasterize

    frame = gpd.read_file(path, engine="pyogrio")
    candidates = [column] if column else [c for c in frame.columns if c.lower() in ("class", "label", "class_id",
                                                                                      "classname", "class_name")]
    if not candidates or candidates[0] not in frame.columns:
        raise DatasetError(f"{path}: no class column ({column or 'class, label or class_id'}); columns are "
                           f"{[c for c in frame.columns if c != 'geometry']}")
    names = {n.lower(): i for i, n in enumerate(table.class_names)}
    ids = []
    for value in frame[candidates[0]]:
        key = str(value).strip().lower()
        if key in names:
            ids.append(names[key])
        elif key.isdigit() and int(key) < table.num_classes:
            ids.append(int(key))
        else:
            raise DatasetError(f"{path}: class {value!r} is not one of the weights' classes "
                               f"{list(table.class_names)} (names or ids 0-{table.num_classes - 1})")
    with open_image(image_path) as image:
        if frame.crs is not None and image.crs is not None and frame.crs != image.crs:
            frame = frame.to_crs(image.crs)
        shape, transform = (image.height, image.width), image.transform
    shapes = [(geom, class_id) for geom, class_id in zip(frame.geometry, ids) if geom is not None and not geom.is_empty]
    if not shapes:
        raise DatasetError(f"{path}: no polygons")
    return rasterize(shapes, out_shape=shape, transform=transform, fill=IGNORE_INDEX, dtype="uint8")


def load_labelled(data_root: str | Path, table: ClassTable, class_column: str | None = None) -> list[Sample]:
    """Every labelled image under ``data_root`` (see the module's docstring) in memory."""
    samples = []
    for folder in split_folders(data_root, table, "all"):
        images = sorted(p for p in (folder / "images").glob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        for image_path in images:
            label_path = _label_file(folder, image_path.stem)
            if label_path.suffix.lower() in VECTOR_SUFFIXES:
                mask = rasterise_polygons(label_path, image_path, table, class_column)
            else:
                _same_grid(image_path, label_path)
                mask = decode_mask(label_path, table)
            samples.append(labelled_sample(f"{folder.name}/{image_path.stem}", image_path, mask, len(table.bands),
                                           label_path))
    if not samples:
        raise DatasetError(f"{data_root}: no images (expected images/ and masks/ or labels/ in it or its sub-folders)")
    return samples


# ----------------------------------------------------------------------------- held-out windows


def holdout_corner(mask: np.ndarray, num_classes: int) -> tuple[int, int]:
    """(y, x) of the corner quarter to hold out: the one whose least-covered class (of those labelled in
    the image) has the largest share of that class's pixels; ties go to the first in reading order."""
    H, W = mask.shape
    h, w = H // 2, W // 2
    total = np.bincount(mask.ravel(), minlength=256)[:num_classes]
    present = np.flatnonzero(total)
    best, where = -1.0, (0, 0)
    for y, x in ((0, 0), (0, W - w), (H - h, 0), (H - h, W - w)):
        counts = np.bincount(mask[y:y + h, x:x + w].ravel(), minlength=256)[:num_classes]
        cover = float((counts[present] / total[present]).min()) if present.size else 0.0
        if cover > best:
            best, where = cover, (y, x)
    return where


def split_holdout(sample: Sample, num_classes: int) -> tuple[list[Sample], Sample]:
    """The image's held-out quarter, and the rest as two rectangles (no held-out pixel in them)."""
    H, W = sample.shape
    h, w = H // 2, W // 2
    y, x = holdout_corner(sample.mask, num_classes)

    def part(name: str, ys: slice, xs: slice) -> Sample:
        valid = None if sample.valid is None else sample.valid[ys, xs]
        return Sample(f"{sample.name}/{name}", sample.image[:, ys, xs], sample.mask[ys, xs], valid)

    rows_out = slice(0, h) if y == 0 else slice(H - h, H)
    rows_in = slice(h, H) if y == 0 else slice(0, H - h)
    cols_out = slice(0, w) if x == 0 else slice(W - w, W)
    cols_in = slice(w, W) if x == 0 else slice(0, W - w)
    held = part("held-out", rows_out, cols_out)
    return [part("rows", rows_in, slice(0, W)), part("beside", rows_out, cols_in)], held


# ----------------------------------------------------------------------------- fine-tuning


def _score(model: nn.Module, card: WeightsCard, val: Sequence[Sample]) -> tuple[float, dict[str, float]]:
    engine = TorchEngine(model, card.mean, card.std, device="cpu")
    result = evaluate(engine, val, list(card.class_names), Tiling(card.tile_size, card.overlap), mean=card.mean,
                      input_range=card.input_range)
    return result.macro_f1, {k: round(v.f1, 4) for k, v in result.per_class.items() if v.support}


def fine_tune(model: nn.Module, card: WeightsCard, train: Sequence[Sample], val: Sequence[Sample], recipe: Recipe,
              time_budget_s: float, progress: Callable[[float], None] | None = None,
              ) -> tuple[nn.Module, float, dict[str, float], int, int]:
    """Fine-tune a copy of ``model``; returns the best copy on ``val`` (macro F1), its score and
    per-class F1, its step and the steps run. The schedule (warm-up, cosine) ends at ``recipe.steps`` or
    at the time budget, whichever comes first."""
    torch.manual_seed(recipe.seed)
    teacher = model.eval()
    student = copy.deepcopy(model).train()
    for name, param in student.named_parameters():
        param.requires_grad = not any(name.startswith(prefix) for prefix in recipe.freeze)
    params = [p for p in student.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    sampler = CropSampler(train, recipe.crop, recipe.seed, card.input_range,
                          strong_photometric=recipe.strong_photometric)
    mean = torch.tensor(card.mean, dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(card.std, dtype=torch.float32).view(1, -1, 1, 1)
    best: tuple[float, dict[str, float], int, nn.Module | None] = (-1.0, {}, 0, None)  # F1, per class, step, model
    started, step = time.perf_counter(), 0

    def progress_now() -> float:
        return max(step / recipe.steps, (time.perf_counter() - started) / time_budget_s)

    while progress_now() < 1.0:
        p = progress_now()
        factor = min(1.0, p / recipe.warmup) if p < recipe.warmup else \
            0.5 * (1 + np.cos(np.pi * (p - recipe.warmup) / (1 - recipe.warmup)))
        for group in optimizer.param_groups:
            group["lr"] = recipe.lr * max(factor, 1e-3)
        student.train()
        if recipe.frozen_batchnorm:
            for m in student.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        images, masks = sampler.batch(recipe.batch_size)
        x = ((torch.from_numpy(images) - mean) / std).contiguous(memory_format=torch.channels_last)
        logits = student(x)
        loss = segmentation_loss(logits, torch.from_numpy(masks))
        if recipe.distillation:
            with torch.no_grad():
                target = teacher(x).softmax(1)
            kl = F.kl_div(logits.log_softmax(1), target, reduction="none").sum(1).mean()
            loss = loss + recipe.distillation * kl
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        step += 1
        if progress:
            progress(progress_now())
        if step % recipe.validate_every == 0 or progress_now() >= 1.0:
            f1, per_class = _score(student, card, val)
            log.info("step %d: held-out macro F1 %.4f", step, f1)
            if f1 > best[0]:
                best = (f1, per_class, step, copy.deepcopy(student).eval())
    return best[3] if best[3] is not None else copy.deepcopy(student).eval(), best[0], best[1], best[2], step


def adapt(weights: str | Path, data_root: str | Path, out: str | Path, *, recipe: Recipe = Recipe(),
          time_budget_min: float = 10.0, class_column: str | None = None, command: str = "",
          progress: Callable[[float], None] | None = None) -> AdaptResult:
    """Fine-tune ``weights`` on the labelled images of ``data_root`` and write ``out``.safetensors/.json:
    the adapted weights if they beat the starting weights on the held-out quarters, else the starting
    weights themselves (the card says which, with both scores)."""
    started = time.perf_counter()
    model, card = load_weights(weights)
    table = table_for(card, data_root)
    samples = load_labelled(data_root, table, class_column)
    train, val = [], []
    for sample in samples:
        if min(sample.shape) < 64:
            raise DatasetError(f"{sample.name}: {sample.shape[0]}x{sample.shape[1]} px is too small to hold out a "
                               "quarter (at least 64 px a side)")
        parts, held = split_holdout(sample, card.num_classes)
        train += parts
        val.append(held)
    if not any((s.mask != IGNORE_INDEX).any() for s in val):
        raise DatasetError(f"{data_root}: no labelled pixels in the held-out quarters")
    start_f1, start_per_class = _score(model, card, val)
    adapted, f1, per_class, best_step, steps = fine_tune(model, card, train, val, recipe, time_budget_min * 60,
                                                         progress)
    kept = "adapted" if f1 > start_f1 else "start"
    result = AdaptResult(kept, start_f1, f1, best_step, steps, time.perf_counter() - started, start_per_class,
                         per_class, None, train, val)
    result.card = save_weights(adapted if kept == "adapted" else model,
                               _card_fields(card, data_root, recipe, command, samples, result), out)
    return result


def _card_fields(card: WeightsCard, data_root, recipe: Recipe, command: str, samples, result: AdaptResult) -> dict:
    as_json = json.loads(json.dumps(card.to_dict()))  # tuples as lists, as a card is stored
    fields = {k: v for k, v in as_json.items() if k not in ("sha256", "int8", "metrics", "training")}
    fields["training"] = {
        "adapted_from": {"name": card.name, "sha256": card.sha256},
        "data_root": str(data_root), "images": [s.name for s in samples],
        "held_out": "the corner quarter of each image whose least-covered class is best covered",
        "recipe": asdict(recipe), "command": command, "kept": result.kept, "steps": result.steps,
        "best_step": result.best_step, "seconds": round(result.seconds),
    }
    fields["metrics"] = {"split": "held-out quarters of the adaptation images",
                         "macro_f1": result.adapted_f1 if result.kept == "adapted" else result.start_f1,
                         "start_macro_f1": result.start_f1, "adapted_macro_f1": result.adapted_f1,
                         "start_per_class_f1": result.start_per_class, "adapted_per_class_f1": result.adapted_per_class,
                         "tile_size": card.tile_size, "overlap": card.overlap}
    fields["lale_geo_version"] = __version__
    if result.kept == "adapted":  # the domain guard now checks scenes against the area adapted to
        fields["domain"] = asdict(_area_profile(card, data_root, samples))
    return fields


def _area_profile(card: WeightsCard, data_root, samples: Sequence[Sample]):
    """The domain profile of the adaptation images: their band statistics and pixel sizes."""
    sizes = []
    for folder in split_folders(data_root, table_for(card, data_root), "all"):
        for path in sorted(p for p in (folder / "images").glob("*") if p.suffix.lower() in IMAGE_SUFFIXES):
            with open_image(path) as src:
                size = pixel_size_metres(src.crs, src.transform, src.height, src.width)
            if size is not None:
                sizes.append(size)
    pixel_size = (min(sizes), max(sizes)) if sizes else None
    note = ("the pixel sizes of the adaptation images" if sizes else
            "the adaptation images carry no CRS: pixel size unknown")
    return profile_from_samples(samples, card.input_range, f"adapted to {Path(data_root).name} from {card.name}",
                                pixel_size, note)
