"""``lale-geo export``: weights as an ONNX model for GeoDeep and the QGIS plugin Deepness."""

from __future__ import annotations

import click

from ..inference.onnx_export import export_for_tools
from ..weights import random_weights
from .options import overlap_option, overwrite_option, tile_size_option, weights_option


@click.command("export")
@weights_option
@click.option("--random-weights", "random_model", default=None, metavar="MODEL",
              help="Export an untrained MODEL (tests).")
@click.option("--output", "-o", "dst", required=True, type=click.Path(dir_okay=False), help="The .onnx file.")
@click.option("--resolution", "resolution_cm", type=click.FloatRange(min=0, min_open=True), default=None,
              metavar="CM", help="cm per pixel the tools resample scenes to (default: the card's pixel size, when "
                                 "it names one).")
@tile_size_option
@overlap_option
@overwrite_option
def command(weights, random_model, dst, resolution_cm, tile_size, overlap, overwrite) -> None:
    """Export weights as an ONNX model with GeoDeep/Deepness metadata ([0, 1] tiles in, probabilities out)."""
    source = random_weights(random_model) if random_model else (weights or "lale_s1_dubai")
    path = export_for_tools(source, dst, tile_size=tile_size, overlap=overlap, resolution_cm=resolution_cm,
                            overwrite=overwrite)
    click.echo(f"wrote {path}: GeoDeep/Deepness segmentation model ([0, 1] tiles in, class probabilities out)")
