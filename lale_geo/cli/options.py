"""Options shared by several commands, defined once."""

from __future__ import annotations

import click

from ..training.datasets import IN_MEMORY_LIMIT_MB

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")

weights_option = click.option(
    "--weights", "-w", default=None, metavar="NAME|PATH",
    help="Shipped weights name or a .safetensors/.json path (default: the shipped default weights).")

device_option = click.option(
    "--device", default="auto", show_default=True, metavar="auto|cpu|cuda[:N]|mps",
    help="Where the network runs; auto picks CUDA when present.")

batch_size_option = click.option("--batch-size", "-b", type=click.IntRange(min=1), default=8,
                                 show_default=True, help="Tiles per network batch.")

tile_size_option = click.option("--tile-size", type=click.IntRange(min=32), default=None,
                                help="Tile size in pixels (default: from the weights card).")

overlap_option = click.option("--overlap", type=click.IntRange(min=0), default=None,
                              help="Overlap between tiles in pixels (default: from the weights card).")

data_option = click.option("--data", "data_root", required=True,
                           type=click.Path(exists=True, file_okay=False),
                           help="Dataset folder (split sub-folders with images/ and masks/).")

classes_option = click.option("--classes", default=None, metavar="NAME|PATH",
                              help="Class table: a shipped name (dubai-aerial, aras400k) or a JSON path "
                                   "(default: DATA/classes.json, or the shipped table named like DATA).")

in_memory_option = click.option(
    "--in-memory-mb", type=click.FloatRange(min=0), default=IN_MEMORY_LIMIT_MB, show_default=True,
    help="Images decoded into memory per split, in MB; GeoTIFF scenes past it are read window by window.")

overwrite_option = click.option("--overwrite", is_flag=True, help="Replace existing output files.")
