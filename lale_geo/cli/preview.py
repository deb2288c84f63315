"""``lale-geo preview``: a quicklook PNG of a class map with a legend."""

from __future__ import annotations

import click

from ..files import check_output
from ..maps.preview import render_preview
from .options import overwrite_option


@click.command("preview")
@click.argument("src", type=click.Path(dir_okay=False))
@click.option("--output", "-o", "dst", required=True, type=click.Path(dir_okay=False), help="PNG to write.")
@click.option("--with-input", type=click.Path(dir_okay=False), default=None,
              help="The scene the map was made from, shown on the left.")
@click.option("--size", type=click.IntRange(min=64), default=1024, show_default=True,
              help="Longest side of each panel in pixels.")
@click.option("--classes", "classes_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Class names as JSON (default: from the raster's metadata).")
@overwrite_option
def command(src, dst, with_input, size, classes_file, overwrite) -> None:
    """Quicklook PNG of the class map SRC (downsampled through its overviews), with a legend."""
    check_output(dst, overwrite, inputs=[src] + ([with_input] if with_input else []))
    legend = render_preview(src, dst, size=size, with_input=with_input, classes_file=classes_file,
                            overwrite=overwrite)
    click.echo(f"wrote {dst} ({len(legend)} classes: {', '.join(legend)})")
