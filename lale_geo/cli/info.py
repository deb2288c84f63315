"""``lale-geo info``: classes, colours, pixel counts, areas and provenance of a class raster."""

from __future__ import annotations

import json

import click

from ..maps.info import raster_info
from .options import json_option


@click.command("info")
@click.argument("src", type=click.Path(dir_okay=False))
@click.option("--classes", "classes_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Class names as JSON (default: from the raster's metadata).")
@json_option
def command(src, classes_file, as_json) -> None:
    """Per-class pixel counts and areas (m2, ha) of the class raster SRC, and how it was made."""
    info = raster_info(src, classes_file)
    if as_json:
        click.echo(json.dumps(info.to_dict(), indent=2))
        return
    click.echo(f"{info.path}: {info.width} x {info.height} px, CRS {info.crs}, nodata {info.nodata}")
    click.echo(f"{'id':>4}  {'class':<28}{'colour':>14}{'pixels':>13}{'hectares':>14}{'share':>8}")
    for c in info.classes:
        colour = "#{:02x}{:02x}{:02x}".format(*c.colour)
        click.echo(f"{c.id:>4}  {c.name:<28}{colour:>14}{c.pixels:>13}{c.area_ha:>14.2f}{100 * c.share:>7.2f}%")
    click.echo(f"      {'nodata':<28}{'':>14}{info.nodata_pixels:>13}")
    for key, value in info.provenance.items():
        click.echo(f"{key}: {value}")
