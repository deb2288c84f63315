"""Training and evaluation: random-crop sampler, Dice + cross-entropy, AdamW with warm-up + cosine,
checkpoints and resume, validation on whole images through the same tiling as predict."""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel

from .. import __version__
from ..errors import DatasetError, WeightsError
from ..files import published
from ..inference.domain import scaled_pixel_sample
from ..inference.engines import TorchEngine
from ..io.classmap import display_colour
from ..models import create_model
from ..weights import WeightsCard, load_weights, save_weights
from .augment import jittered_size, photometric, resample
from .datasets import ClassTable, RasterSample, Sample
from .evaluation import Evaluation, Tiling, evaluate
from .metrics import IGNORE_INDEX

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# ----------------------------------------------------------------------------- sampling


class CropSampler:
    """Random crops (area-weighted over images) with flips, rot90, optional scale jitter and photometric
    jitter. With ``crop_sizes`` each batch draws one crop size and holds about as many pixels as ``size``
    crops of ``crop`` (so a step costs about the same whatever the size)."""

    def __init__(self, samples: Sequence[Sample | RasterSample], crop: int, seed: int,
                 input_range: tuple[float, float] = (0.0, 255.0), crop_sizes: Sequence[int] = (),
                 scale_jitter: float = 0.0, strong_photometric: bool = False) -> None:
        self.samples = list(samples)
        self.crop = crop
        self.crop_sizes = list(crop_sizes) or [crop]
        self.scale_jitter = scale_jitter
        self.strong_photometric = strong_photometric
        self.input_range = input_range
        self.rng = np.random.default_rng(seed)
        areas = np.array([h * w for h, w in (s.shape for s in self.samples)], np.float64)
        self.p = areas / areas.sum()

    def batch(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """(n, bands, c, c) float32 in [0, 1] (from ``input_range``) and (n, c, c) int64 targets; n = size
        and c = crop unless several crop sizes are drawn from."""
        lo, hi = self.input_range
        crop = self.crop
        if len(self.crop_sizes) > 1:
            crop = int(self.rng.choice(self.crop_sizes))
            size = max(1, round(size * self.crop**2 / crop**2))
        images, masks = [], []
        for idx in self.rng.choice(len(self.samples), size=size, p=self.p):
            window = jittered_size(crop, self.scale_jitter, self.rng)
            image, mask = self._crop(self.samples[idx], window)
            image = np.clip((image.astype(np.float32) - lo) / (hi - lo), 0.0, 1.0)
            image, mask = resample(image, mask, crop)
            if self.rng.random() < 0.5:
                image, mask = image[:, :, ::-1], mask[:, ::-1]
            if self.rng.random() < 0.5:
                image, mask = image[:, ::-1], mask[::-1]
            if self.rng.random() < 0.5:
                k = int(self.rng.integers(1, 4))
                image, mask = np.rot90(image, k, axes=(1, 2)), np.rot90(mask, k)
            image = photometric(image, self.rng, self.strong_photometric)
            images.append(np.ascontiguousarray(image))
            masks.append(np.ascontiguousarray(mask))
        return np.stack(images), np.stack(masks).astype(np.int64)

    def _crop(self, sample: Sample | RasterSample, c: int) -> tuple[np.ndarray, np.ndarray]:
        H, W = sample.shape
        if H < c or W < c:  # reflect-pad small images up to the crop size, pad labels as ignore
            image, mask = sample.read(0, 0, H, W)
            ph, pw = max(c - H, 0), max(c - W, 0)
            sample = Sample(sample.name, np.pad(image, ((0, 0), (0, ph), (0, pw)), mode="reflect"),
                            np.pad(mask, ((0, ph), (0, pw)), constant_values=IGNORE_INDEX))
            H, W = sample.shape
        y, x = int(self.rng.integers(0, H - c + 1)), int(self.rng.integers(0, W - c + 1))
        return sample.read(y, x, c, c)


# ----------------------------------------------------------------------------- loss


def dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """Multiclass soft Dice (1 - mean over classes present in truth or prediction), ignore pixels left out."""
    num_classes = logits.shape[1]
    valid = (target != IGNORE_INDEX).unsqueeze(1)
    probs = logits.softmax(1) * valid
    onehot = F.one_hot(target.clamp(max=num_classes - 1), num_classes).permute(0, 3, 1, 2) * valid
    dims = (0, 2, 3)
    inter = (probs * onehot).sum(dims)
    card = probs.sum(dims) + onehot.sum(dims)
    dice = (2 * inter + eps) / (card + eps)
    present = onehot.sum(dims) > 0
    return 1 - dice[present].mean() if present.any() else logits.sum() * 0


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy (ignore 255) + soft Dice."""
    return F.cross_entropy(logits, target, ignore_index=IGNORE_INDEX) + dice_loss(logits, target)


# ----------------------------------------------------------------------------- evaluation


# ----------------------------------------------------------------------------- training loop


@dataclass
class TrainConfig:
    model: str = "lale_s1"
    crop: int = 256
    batch_size: int = 16
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup: float = 0.05
    max_steps: int = 100_000
    time_budget_s: float = 3600.0
    val_every: int = 300
    tile_size: int = 512
    overlap: int = 128
    seed: int = 0
    model_kwargs: dict = field(default_factory=dict)
    crop_max: int | None = None  # crops of sizes crop..crop_max (step 32), batch scaled to equal pixels
    scale_jitter: float = 0.0  # windows of crop * s, s log-uniform in [1 / (1 + j), 1 + j], resampled
    strong_photometric: bool = False
    ema: float = 0.0  # decay of an exponential moving average of the weights (0: off); the EMA is kept

    def crop_sizes(self) -> list[int]:
        return list(range(self.crop, (self.crop_max or self.crop) + 1, 32))


def ema_average(decay: float):
    """EMA update with a warm-up (decay grows as (1 + n) / (10 + n) up to ``decay``), so that the
    average is not dominated by the random initial weights in a short run."""
    def average(averaged: torch.Tensor, current: torch.Tensor, num_averaged: torch.Tensor) -> torch.Tensor:
        d = min(decay, (1.0 + float(num_averaged)) / (10.0 + float(num_averaged)))
        return averaged * d + current * (1.0 - d)
    return average


def lr_factor(progress: float, warmup: float) -> float:
    """Linear warm-up to 1, then cosine to 0 over ``progress`` in [0, 1]."""
    if progress < warmup:
        return max(progress / warmup, 1e-3)
    return 0.5 * (1 + math.cos(math.pi * min((progress - warmup) / (1 - warmup), 1.0)))


class Trainer:
    """Trains one model; the schedule runs on progress = max(step / max_steps, elapsed / time budget),
    so a time-budgeted run always finishes its cosine decay. Checkpoints allow ``resume``."""

    def __init__(self, config: TrainConfig, table: ClassTable, train: Sequence[Sample | RasterSample],
                 val: Sequence[Sample | RasterSample], out: Path, model: nn.Module | None = None) -> None:
        self.config = config
        self.table = table
        self.val = val
        self.out = Path(out)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(config.seed)
        self.model = model or create_model(config.model, num_classes=table.num_classes,
                                           in_chans=len(table.bands), **config.model_kwargs)
        self.model = self.model.to(  # type: ignore[call-overload]  # torch's stubs lack Module.to's memory_format
            memory_format=torch.channels_last)
        self.sampler = CropSampler(train, config.crop, config.seed, table.input_range, config.crop_sizes(),
                                   config.scale_jitter, config.strong_photometric)
        self.ema = AveragedModel(self.model, avg_fn=ema_average(config.ema), use_buffers=True) if config.ema else None
        self.norm_mean, self.norm_std = normalisation_for(table, train)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.lr,
                                           weight_decay=config.weight_decay)
        self.step, self.elapsed, self.best_f1, self.best_step = 0, 0.0, -1.0, -1
        self.pixels_seen = 0
        self.mean = torch.tensor(self.norm_mean).view(1, -1, 1, 1)
        self.std = torch.tensor(self.norm_std).view(1, -1, 1, 1)

    @property
    def checkpoint_path(self) -> Path:
        return self.out.with_suffix(".ckpt")

    @property
    def log_path(self) -> Path:
        return self.out.with_suffix(".log.jsonl")

    def progress(self) -> float:
        return max(self.step / self.config.max_steps, self.elapsed / self.config.time_budget_s)

    def save_checkpoint(self) -> None:
        # Plain tensors and numbers only: loaded back with weights_only=True (no pickle of objects).
        state = {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "step": self.step, "elapsed": self.elapsed, "best_f1": self.best_f1,
            "best_step": self.best_step, "config": json.dumps(asdict(self.config)),
            "rng": json.dumps(self.sampler.rng.bit_generator.state),
            "torch_rng": torch.get_rng_state(), "pixels_seen": self.pixels_seen,
        }
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
        with published(self.checkpoint_path, overwrite=True) as tmp:
            torch.save(state, tmp)

    def load_checkpoint(self) -> None:
        state = torch.load(self.checkpoint_path, weights_only=True)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step, self.elapsed = state["step"], state["elapsed"]
        self.best_f1, self.best_step = state["best_f1"], state["best_step"]
        self.sampler.rng.bit_generator.state = json.loads(state["rng"])
        torch.set_rng_state(state["torch_rng"])
        self.pixels_seen = int(state.get("pixels_seen", self.step * self.config.batch_size * self.config.crop**2))
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        log.info("resumed at step %d (%.0f s trained, best macro F1 %.4f)", self.step, self.elapsed,
                 self.best_f1)

    def _log(self, record: dict) -> None:
        with open(self.log_path, "a") as f:
            f.write(json.dumps(record) + "\n")

    @property
    def kept_model(self) -> nn.Module:
        """What is validated and saved: the EMA of the weights when there is one."""
        return self.ema.module if self.ema is not None else self.model

    def validate(self) -> Evaluation:
        engine = TorchEngine(self.kept_model, self.norm_mean, self.norm_std, device="cpu")
        result = evaluate(engine, self.val, list(self.table.class_names),
                          Tiling(self.config.tile_size, self.config.overlap), input_range=self.table.input_range,
                          mean=self.norm_mean)
        self.model.train()
        return result

    def train_step(self) -> float:
        images, masks = self.sampler.batch(self.config.batch_size)
        x = ((torch.from_numpy(images) - self.mean) / self.std).contiguous(memory_format=torch.channels_last)
        loss = segmentation_loss(self.model(x), torch.from_numpy(masks))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        self.pixels_seen += masks.size
        return float(loss.detach())

    def run(self, card_fields: dict) -> WeightsCard:
        """Train to the end of the schedule, validating every ``val_every`` steps; writes the best
        weights (by validation macro F1) with their card to ``out``."""
        cfg = self.config
        self.model.train()
        losses: list[float] = []
        last = time.perf_counter()
        while self.progress() < 1.0:
            for group in self.optimizer.param_groups:
                group["lr"] = cfg.lr * lr_factor(self.progress(), cfg.warmup)
            losses.append(self.train_step())
            self.step += 1
            now = time.perf_counter()
            self.elapsed += now - last
            last = now
            if self.step % 20 == 0:
                log.info("step %d  loss %.4f  lr %.2e  %.0f s", self.step, np.mean(losses[-20:]),
                         self.optimizer.param_groups[0]["lr"], self.elapsed)
            if self.step % cfg.val_every == 0 or self.progress() >= 1.0:
                self._validate_and_keep_best(float(np.mean(losses)), card_fields)
                losses = []
                self.save_checkpoint()
                last = time.perf_counter()  # validation time is not training time
        return WeightsCard.read(self.out.with_suffix(".json"))

    def _validate_and_keep_best(self, train_loss: float, card_fields: dict) -> None:
        t0 = time.perf_counter()
        result = self.validate()
        record = {"step": self.step, "epoch": self.epoch, "train_seconds": round(self.elapsed, 1),
                  "train_loss": round(float(train_loss), 5), "val_macro_f1": round(result.macro_f1, 5),
                  "val_miou": round(result.miou, 5), "val_seconds": round(time.perf_counter() - t0, 1)}
        self._log(record)
        log.info("validation: %s", record)
        if result.macro_f1 > self.best_f1:
            self.best_f1, self.best_step = result.macro_f1, self.step
            cfg = self.config
            training = dict(card_fields.get("training", {}), steps=self.step, epochs=round(self.epoch, 2),
                            train_seconds=round(self.elapsed), crop=cfg.crop, crop_max=cfg.crop_max,
                            scale_jitter=cfg.scale_jitter, strong_photometric=cfg.strong_photometric,
                            ema=cfg.ema, flips=True, rot90=True, batch_size=cfg.batch_size, lr=cfg.lr,
                            seed=cfg.seed)
            metrics = {"split": "val", "macro_f1": result.macro_f1, "miou": result.miou,
                       "pixel_accuracy": result.pixel_accuracy,
                       "per_class_f1": {k: v.f1 for k, v in result.per_class.items()},
                       "per_class_iou": {k: v.iou for k, v in result.per_class.items()},
                       "tile_size": self.config.tile_size, "overlap": self.config.overlap}
            fields = dict(card_fields, training=training, metrics=metrics, lale_geo_version=__version__)
            save_weights(self.kept_model, fields, self.out)

    @property
    def epoch(self) -> float:
        """Crops seen / crops that tile the training set once."""
        pixels = sum(h * w for h, w in (s.shape for s in self.sampler.samples))
        return self.pixels_seen / pixels


def initial_model(weights: str, model: str, table: ClassTable) -> tuple[nn.Module, dict]:
    """The model of ``weights`` to fine-tune, checked against the run's model name, classes and bands, and
    the card fields that record where training started."""
    initial, card = load_weights(weights)
    found = (card.model, tuple(card.class_names), tuple(card.bands))
    wanted = (model, tuple(table.class_names), tuple(table.bands))
    if found != wanted:
        raise WeightsError(f"init_from={weights}: weights are {found[0]} for classes {list(found[1])} "
                                     f"and bands {list(found[2])}; this run trains {wanted[0]} for "
                                     f"{list(wanted[1])} and {list(wanted[2])}")
    return initial.train(), {"init_from": {"name": card.name, "sha256": card.sha256}}


def normalisation_for(table: ClassTable, train: Sequence[Sample | RasterSample],
                      ) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-band mean and std on [0, 1]-scaled values: the table's, ImageNet's for RGB (the LALE recipe), or
    measured on the training images' valid pixels for other bands (the statistic of the domain profile)."""
    if table.mean is not None and table.std is not None:
        return tuple(table.mean), tuple(table.std)
    if tuple(table.bands) == ("red", "green", "blue"):
        return IMAGENET_MEAN, IMAGENET_STD
    scaled = np.concatenate([scaled_pixel_sample(s, table.input_range) for s in train], axis=1)
    if scaled.shape[1] == 0:
        raise DatasetError(f"{table.name}: the training images have no valid pixels to measure mean and std on")
    return tuple(float(v) for v in scaled.mean(1)), tuple(float(max(v, 1e-3)) for v in scaled.std(1))


def card_fields_for(config: TrainConfig, table: ClassTable, name: str, command: str,
                    data_root: str, mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> dict:
    """Card fields known before training (metrics and sha256 are added when weights are saved)."""
    return {
        "name": name, "model": config.model, "model_kwargs": config.model_kwargs,
        # the card's colours draw maps: conventional ones by class name, the annotation colour otherwise
        "classes": [{"id": i, "name": n, "colour": list(display_colour(n, c))}
                    for i, (n, c) in enumerate(zip(table.class_names, table.colours))],
        "bands": list(table.bands), "input_range": list(table.input_range),
        "mean": list(mean or IMAGENET_MEAN), "std": list(std or IMAGENET_STD),
        "tile_size": config.tile_size, "overlap": config.overlap,
        "license": table.licence or "unspecified",
        "training": {"data": table.name, "data_root": data_root, "data_licence": table.licence,
                     "attribution": table.attribution,
                     "split": {k: list(v) for k, v in table.splits.items()},
                     "command": command},
    }
