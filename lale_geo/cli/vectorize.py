"""``lale-geo vectorize``: land-cover polygons from a class raster."""

from __future__ import annotations

import sys
import warnings

import click

from ..io.raster import open_raster
from ..maps.vector_files import FORMATS, check_vector_output, vectorize_to_file
from .options import overwrite_option
from .predict import parse_ints


def format_summary(summary, output) -> str:
    lines = [f"wrote {output}: {summary.polygons} polygons"]
    for name in summary.polygons_per_class:
        lines.append(f"  {name:<28}{summary.polygons_per_class[name]:>9} polygons "
                     f"{summary.area_per_class_m2[name] / 1e4:>14.2f} ha")
    total = sum(summary.area_per_class_m2.values())
    lines.append(f"  {'total':<28}{summary.polygons:>9} polygons {total / 1e4:>14.2f} ha")
    return "\n".join(lines)


@click.command("vectorize")
@click.argument("src", type=click.Path(dir_okay=False))
@click.option("--output", "-o", "dst", required=True, type=click.Path(dir_okay=False),
              help=f"Output vector file: {', '.join(FORMATS)}.")
@click.option("--layer", default=None, help="Layer name (GeoPackage; default: the file name).")
@click.option("--min-area", type=click.FloatRange(min=0), default=None,
              help="Merge patches smaller than this (m2) into their neighbours first.")
@click.option("--min-pixels", type=click.IntRange(min=0), default=0, show_default=True,
              help="Merge patches smaller than this (pixels) into their neighbours first.")
@click.option("--connectivity", type=click.Choice(["4", "8"]), default="4", show_default=True)
@click.option("--simplify", type=click.FloatRange(min=0), default=None, metavar="TOLERANCE",
              help="Simplify as a coverage (shared edges once; CRS units).")
@click.option("--classes-only", callback=parse_ints, default=None, metavar="ID,ID...",
              help="Keep only these class ids.")
@click.option("--classes", "classes_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help='Class names as JSON ({"1": "Tree"} or a class table); default: from the raster.')
@click.option("--block-size", type=click.IntRange(min=16), default=2048, show_default=True)
@overwrite_option
@click.pass_context
def command(ctx, src, dst, layer, min_area, min_pixels, connectivity, simplify, classes_only, classes_file,
            block_size, overwrite) -> None:
    """Polygons of the class raster SRC with class names and areas (m2), seam-free at any size."""
    quiet = ctx.obj.get("verbosity", 0) < 0
    check_vector_output(dst, overwrite, inputs=[src])  # fail before the work, not after
    with open_raster(src) as dataset:
        blocks = -(-dataset.height // block_size) * -(-dataset.width // block_size)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        with click.progressbar(length=blocks, label="blocks", file=sys.stderr,
                               hidden=quiet or not sys.stderr.isatty()) as bar:
            summary = vectorize_to_file(src, dst, layer=layer, overwrite=overwrite, simplify=simplify,
                                        block_size=block_size, connectivity=int(connectivity),
                                        min_pixels=min_pixels, min_area=min_area, classes_only=classes_only,
                                        classes_file=classes_file, progress=bar.update)
    for w in caught:
        click.echo(f"Warning: {w.message}", err=True)
    if not quiet:
        click.echo(format_summary(summary, dst))
