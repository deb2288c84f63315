"""``lale-geo adapt``: fine-tune weights on a few labelled images of a new area, kept only if better."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

from ..errors import OutputExistsError
from .options import overwrite_option, weights_option


@click.command("adapt")
@weights_option
@click.option("--data", "data_root", required=True, type=click.Path(exists=True, file_okay=False),
              help="Folder with images/ and masks/ (or labels/): label rasters on the image grid, or polygons "
                   "(GPKG, GeoJSON) with a class column.")
@click.option("--out", "-o", required=True, help="Output base path: writes OUT.safetensors and OUT.json.")
@click.option("--time-budget", type=click.FloatRange(min=0.1), default=10.0, show_default=True,
              help="Minutes of fine-tuning at most (the recipe's steps may end it sooner).")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Fine-tuning steps (default: the recipe's).")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Peak learning rate (default: the recipe's).")
@click.option("--distillation", type=click.FloatRange(min=0), default=None,
              help="Weight of a pull toward the starting weights' predictions (default: the recipe's, 0): "
                   "keeps part of what they know of classes your labels leave out.")
@click.option("--whole-network", is_flag=True,
              help="Train the encoder too (default: the decoder only). Fits your images closer; carried "
                   "less well to images left out in benchmarks/adapt.py.")
@click.option("--class-column", default=None, help="Class column of polygon labels (default: class, label or "
                                                    "class_id).")
@click.option("--quantize", "make_int8", is_flag=True,
              help="Then make and check an INT8 model of the result, as `lale-geo quantize` does (needs nncf).")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="Torch threads (default: all cores).")
@overwrite_option
@click.pass_context
def command(ctx, weights, data_root, out, time_budget, steps, lr, distillation, whole_network, class_column,
            make_int8, threads, overwrite) -> None:
    """Fine-tune weights on a few labelled images of a new area; keep them only if they beat the start."""
    import dataclasses

    import torch

    from ..training.adaptation import Recipe, adapt
    from ..weights import DEFAULT_WEIGHTS

    if threads:
        torch.set_num_threads(threads)
    out_path = Path(out)
    existing = [p for p in (out_path.with_suffix(".safetensors"), out_path.with_suffix(".json")) if p.exists()]
    if existing and not overwrite:
        raise OutputExistsError(f"{existing[0]}: exists; pass --overwrite to replace it")
    given = {"steps": steps, "lr": lr, "distillation": distillation, "freeze": () if whole_network else None}
    recipe = dataclasses.replace(Recipe(), **{k: v for k, v in given.items() if v is not None})
    command_line = "lale-geo " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    quiet = ctx.find_root().obj.get("verbosity", 0) < 0 if ctx.find_root().obj else False
    with click.progressbar(length=1000, label="adapting", file=sys.stderr,
                           hidden=quiet or not sys.stderr.isatty()) as bar:
        def progress(done: float) -> None:
            bar.update(int(done * 1000) - bar.pos)

        result = adapt(weights or DEFAULT_WEIGHTS, data_root, out_path, recipe=recipe, time_budget_min=time_budget,
                       class_column=class_column, command=command_line, progress=progress)
    click.echo(f"{result.describe()}; wrote {out_path.with_suffix('.safetensors')}")
    if make_int8:
        from ..training.quantize import quantize

        checked = quantize(out_path.with_suffix(".safetensors"), None, command=command_line,
                           samples=(result.train, result.val))
        click.echo(checked.describe(checked_on="held-out"))
