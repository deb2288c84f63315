"""``lale-geo evaluate``: score weights on a labelled split, tiled exactly like predict."""

from __future__ import annotations

import json

import click

from ..errors import DatasetError
from ..inference.engines import ENGINES, TorchEngine
from ..inference.settings import PRECISIONS, InferenceSettings
from ..inference.tta import TTA_MODES
from ..training.datasets import load_split, resolve_class_table
from ..training.evaluation import Evaluation, Tiling, evaluate
from .options import (
    batch_size_option,
    classes_option,
    data_option,
    device_option,
    in_memory_option,
    json_option,
    overlap_option,
    tile_size_option,
    weights_option,
)


def format_table(result: Evaluation) -> str:
    lines = [f"{'class':<28}{'IoU':>8}{'F1':>8}{'prec':>8}{'recall':>8}{'support':>12}"]
    for name, s in result.per_class.items():
        lines.append(f"{name:<28}{s.iou:>8.4f}{s.f1:>8.4f}{s.precision:>8.4f}{s.recall:>8.4f}{s.support:>12}")
    lines.append(f"macro F1 {result.macro_f1:.4f}   mIoU {result.miou:.4f}   "
                 f"pixel accuracy {result.pixel_accuracy:.4f}")
    if result.macro_f1_ci95:
        low, high = result.macro_f1_ci95
        lines.append(f"macro F1 95 % interval (bootstrap over {len(result.per_image)} images): "
                     f"{low:.4f} - {high:.4f}")
    if result.per_tile:
        t = result.per_tile
        lines.append(f"per-tile macro F1 ({t['tiles']} cells of {t['tile_size']} px): mean {t['mean']:.4f}, "
                     f"median {t['median']:.4f}, 10th percentile {t['p10']:.4f}")
    if result.agreement:
        a = result.agreement
        lines.append(f"tiled vs untiled: {100 * a['tiled_vs_untiled']:.2f} % of pixels agree; "
                     f"grid shifted by {a['shift_px']} px: {100 * a['shifted_grid']:.2f} %")
    lines.append("per-image macro F1: " + ", ".join(f"{k} {v:.3f}" for k, v in result.per_image.items()))
    lines.append("confusion matrix (rows = truth, columns = prediction):")
    lines += ["  " + " ".join(f"{v:>10}" for v in row) for row in result.confusion_matrix]
    return "\n".join(lines)


@click.command("evaluate")
@weights_option
@data_option
@classes_option
@click.option("--split", default="val", show_default=True)
@tile_size_option
@overlap_option
@batch_size_option
@device_option
@click.option("--engine", type=click.Choice(ENGINES), default="auto", show_default=True,
              help="Inference engine, chosen as lale-geo predict chooses it.")
@click.option("--tta", type=click.Choice(TTA_MODES), default="none", show_default=True,
              help="Test-time augmentation, as for lale-geo predict.")
@click.option("--precision", type=click.Choice(PRECISIONS), default="auto", show_default=True,
              help="As for lale-geo predict (auto: INT8 where the card says it passed).")
@click.option("--agreement/--no-agreement", default=True, show_default=True,
              help="Also measure how much the map depends on the tile grid: tiled vs untiled (the whole image "
                   "in one torch call) and tiled vs a grid shifted by 200 px (about 3x the time).")
@in_memory_option
@json_option
def command(weights, data_root, classes, split, tile_size, overlap, batch_size, device, engine, tta, precision,
            agreement, in_memory_mb, as_json) -> None:
    """Per-class IoU/F1/precision/recall, macro F1, mIoU, accuracy and confusion matrix on a split.

    Images are tiled exactly as lale-geo predict tiles a scene (the same settings and defaults)."""
    resolved = InferenceSettings(weights=weights, tile_size=tile_size, overlap=overlap, batch_size=batch_size,
                                 device=device, engine=engine, tta=tta, precision=precision).resolve()
    card = resolved.card
    table = resolve_class_table(data_root, classes)
    if list(table.class_names) != card.class_names:
        raise DatasetError(f"{data_root}: classes {list(table.class_names)} differ from the weights' "
                           f"{card.class_names}; pass --classes with the weights' class table")
    samples = load_split(data_root, table, split, bands=len(card.bands), in_memory_limit_mb=in_memory_mb)
    runner = resolved.create_engine()
    whole_image = TorchEngine(resolved.model.model, card.mean, card.std, device) if agreement else None
    result = evaluate(runner, samples, card.class_names, Tiling(resolved.tile_size, resolved.overlap, batch_size),
                      mean=card.mean, input_range=card.input_range, whole_image=whole_image)
    run = dict(weights=card.name, split=split, images=len(samples), tile_size=resolved.tile_size,
               overlap=resolved.overlap, engine=runner.name, precision=resolved.settings.precision)
    click.echo(json.dumps(dict(result.to_dict(), **run), indent=2) if as_json else format_table(result))
