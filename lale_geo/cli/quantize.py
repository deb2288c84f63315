"""``lale-geo quantize``: an INT8 OpenVINO model for weights, kept only where it keeps the map."""

from __future__ import annotations

import click

from .options import data_option, weights_option


@click.command("quantize")
@weights_option
@data_option
@click.option("--split", default="train", show_default=True, help="Calibration tiles come from this split.")
@click.option("--val-split", default="val", show_default=True, help="INT8 is checked against fp32 on this split.")
@click.option("--tiles", type=click.IntRange(min=8), default=256, show_default=True, help="Calibration tiles.")
def command(weights, data_root, split, val_split, tiles) -> None:
    """Make an INT8 OpenVINO model of the weights and check it against fp32 on validation images."""
    import shlex
    import sys

    from ..training.quantize import quantize
    from ..weights import DEFAULT_WEIGHTS

    command_line = "lale-geo " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    checked = quantize(weights or DEFAULT_WEIGHTS, data_root, split=split, val_split=val_split,
                       calibration_tiles=tiles, command=command_line)
    click.echo(checked.describe())
