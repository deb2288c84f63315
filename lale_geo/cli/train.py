"""``lale-geo train``: fit a model on a labelled dataset and write weights with their card."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

from ..errors import OutputExistsError
from ..training.datasets import load_split, resolve_class_table
from ..training.trainer import TrainConfig, Trainer, card_fields_for, initial_model
from .options import classes_option, data_option, in_memory_option, overwrite_option


@click.command("train")
@data_option
@classes_option
@click.option("--model", "-m", default="lale_s1", show_default=True, help="Registered model name.")
@click.option("--out", "-o", required=True, help="Output base path: writes OUT.safetensors and OUT.json.")
@click.option("--train-split", default="train", show_default=True)
@click.option("--val-split", default="val", show_default=True)
@click.option("--crop", type=click.IntRange(min=32), default=256, show_default=True,
              help="Crop size (the smallest with --crop-max); --batch-size counts crops of this size.")
@click.option("--crop-max", type=click.IntRange(min=32), default=None,
              help="Draw each batch's crop size from CROP..CROP_MAX in steps of 32, with as many pixels per "
                   "batch as at CROP: the network learns to work with contexts of every tile size.")
@click.option("--scale-jitter", type=click.FloatRange(min=0, max=1), default=0.0, show_default=True,
              help="Read windows of crop x s, s log-uniform in [1/(1+J), 1+J], resampled to the crop size.")
@click.option("--strong-photometric", is_flag=True,
              help="Add per-band gain, saturation, gamma and noise to the brightness/contrast jitter.")
@click.option("--ema", type=click.FloatRange(min=0, max=1, max_open=True), default=0.0, show_default=True,
              help="Keep an exponential moving average of the weights with this decay (e.g. 0.995); it is "
                   "what is validated and saved. 0: off.")
@click.option("--batch-size", "-b", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--lr", type=float, default=2e-3, show_default=True)
@click.option("--max-steps", type=click.IntRange(min=1), default=100_000, show_default=True)
@click.option("--time-budget", type=float, default=60.0, show_default=True,
              help="Training minutes (validation excluded); the cosine schedule ends with the budget.")
@click.option("--val-every", type=click.IntRange(min=1), default=300, show_default=True,
              help="Validate (whole images, tiled like predict) every N steps; the best is kept.")
@click.option("--tile-size", type=click.IntRange(min=32), default=512, show_default=True,
              help="Tile size for validation and the card's predict default.")
@click.option("--overlap", type=click.IntRange(min=0), default=128, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=None, help="Torch threads (default: all cores).")
@click.option("--resume", is_flag=True, help="Continue from OUT.ckpt.")
@click.option("--init-from", metavar="WEIGHTS", default=None,
              help="Start from these weights (a shipped name or a .safetensors path) instead of a random "
                   "initialisation: fine-tuning. Model, classes and bands must match.")
@in_memory_option
@overwrite_option
def command(data_root, classes, model, out, train_split, val_split, crop, crop_max, scale_jitter,
            strong_photometric, ema, batch_size, lr, max_steps, time_budget, val_every, tile_size, overlap, seed,
            threads, resume, init_from, in_memory_mb, overwrite) -> None:
    """Train MODEL on DATA and keep the weights that score best on the validation split."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    out_path = Path(out)
    existing = [p for p in (out_path.with_suffix(".safetensors"), out_path.with_suffix(".json"))
                if p.exists()]
    if existing and not (overwrite or resume):
        raise OutputExistsError(f"{existing[0]}: exists; pass --overwrite to replace it or --resume")
    if not resume:
        for p in (out_path.with_suffix(".ckpt"), out_path.with_suffix(".log.jsonl")):
            p.unlink(missing_ok=True)
    if crop_max is not None and crop_max < crop:
        raise click.BadParameter(f"{crop_max} is smaller than --crop {crop}", param_hint="--crop-max")
    table = resolve_class_table(data_root, classes)
    train, val = (load_split(data_root, table, split, in_memory_limit_mb=in_memory_mb)
                  for split in (train_split, val_split))
    click.echo(f"{len(train)} training and {len(val)} validation images, {table.num_classes} classes",
               err=True)
    config = TrainConfig(model=model, crop=crop, batch_size=batch_size, lr=lr, max_steps=max_steps,
                         time_budget_s=time_budget * 60, val_every=val_every, tile_size=tile_size,
                         overlap=overlap, seed=seed, crop_max=crop_max, scale_jitter=scale_jitter,
                         strong_photometric=strong_photometric, ema=ema)
    command_line = "lale-geo " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    initial, init_fields = initial_model(init_from, model, table) if init_from else (None, {})
    trainer = Trainer(config, table, train, val, out_path, model=initial)
    if resume and trainer.checkpoint_path.exists():
        trainer.load_checkpoint()
    fields = card_fields_for(config, table, out_path.name, command_line, str(data_root),
                             trainer.norm_mean, trainer.norm_std)
    fields["training"].update(init_fields)
    card = trainer.run(fields)
    click.echo(f"wrote {out_path.with_suffix('.safetensors')} (step {card.training['steps']}, "
               f"val macro F1 {card.metrics['macro_f1']:.4f}, mIoU {card.metrics['miou']:.4f})")
