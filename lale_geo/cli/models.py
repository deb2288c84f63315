"""``lale-geo models``: every registered model with its size and cost, and the shipped weights."""

from __future__ import annotations

import json

import click
import torch

from ..errors import LaleGeoError
from ..models import count_macs, count_params, create_model, list_models
from ..weights import list_weights, load_card
from .options import json_option


def model_rows(num_classes: int = 7) -> list[dict]:
    rows: list[dict[str, object]] = []
    for name in list_models():
        with torch.device("meta"):  # shapes only: no weights initialised, no memory
            try:
                model = create_model(name, num_classes=num_classes)
            except LaleGeoError as e:  # an optional dependency is missing: say so in the table
                rows.append({"name": name, "unavailable": str(e)})
                continue
        rows.append({
            "name": name,
            "params_m": round(count_params(model) / 1e6, 3),
            "gmacs_256": round(count_macs(model, 256) / 1e9, 3),
            "gmacs_512": round(count_macs(model, 512) / 1e9, 3),
            "gmacs_256_run": round(count_macs(model, 256, as_run=True) / 1e9, 3),
            "output_stride": model.output_stride,
            "size_multiple": model.size_multiple,
        })
    return rows


def weights_rows() -> list[dict]:
    rows = []
    for name in list_weights():
        card = load_card(name)
        rows.append({"name": name, "model": card.model, "classes": card.class_names,
                     "bands": list(card.bands), "tile_size": card.tile_size, "overlap": card.overlap,
                     "val_macro_f1": card.metrics.get("macro_f1"), "data": card.training.get("data"),
                     "license": card.license})
    return rows


@click.command("models")
@click.option("--num-classes", type=click.IntRange(min=1), default=7, show_default=True,
              help="Classes of the head used for the counts.")
@json_option
def command(num_classes: int, as_json: bool) -> None:
    """List registered models (params, GMACs with attention matmuls, output stride) and shipped weights.

    GMACs count the network as its paper describes it; RUN@256 counts what runs (the decoder's fuse
    folded into its projections: the same function). Logits are computed at OUT_STRIDE and resized to
    the input; inputs are padded to SIZE_MULTIPLE.
    """
    rows, weights = model_rows(num_classes), weights_rows()
    if as_json:
        click.echo(json.dumps({"models": rows, "weights": weights}, indent=2))
        return
    click.echo(f"{'model':<14}{'params (M)':>11}{'GMACs@256':>11}{'GMACs@512':>11}{'run@256':>9}{'out stride':>12}"
               f"{'size multiple':>15}")
    unavailable = [r for r in rows if "unavailable" in r]
    for r in rows:
        if "unavailable" in r:
            continue
        click.echo(f"{r['name']:<14}{r['params_m']:>11.3f}{r['gmacs_256']:>11.3f}{r['gmacs_512']:>11.3f}"
                   f"{r['gmacs_256_run']:>9.3f}{r['output_stride']:>12}{r['size_multiple']:>15}")
    if unavailable:  # benchmark-only references that need an extra: apart, not among the user's models
        click.echo("\nbenchmark references, not installed: "
                   + "; ".join(f"{r['name']} ({r['unavailable']})" for r in unavailable))
    click.echo("")
    if not weights:
        click.echo("shipped weights: none")
    for w in weights:
        f1 = w["val_macro_f1"]
        click.echo(f"weights {w['name']}: model {w['model']}, {len(w['classes'])} classes "
                   f"({', '.join(w['classes'])}), data {w['data']}, val macro F1 "
                   f"{'n/a' if f1 is None else f'{f1:.3f}'}, licence {w['license']}")
