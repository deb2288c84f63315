"""``lale-geo``: the click group, logging set-up, and the one place library errors become messages."""

from __future__ import annotations

import logging

import click

from .. import __version__
from ..errors import LaleGeoError


class LaleGeoGroup(click.Group):
    """Turns library errors into one-line messages (exit 1); ``-v`` shows the traceback instead."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except LaleGeoError as e:
            if ctx.obj and ctx.obj.get("verbosity", 0) > 0:
                raise
            raise click.ClickException(str(e)) from None


@click.group(cls=LaleGeoGroup)
@click.version_option(__version__, prog_name="lale-geo")
@click.option("-v", "--verbose", count=True, help="More log output (and tracebacks on errors).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors.")
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: bool) -> None:
    """Land-cover maps and polygons from large georeferenced rasters."""
    level = logging.ERROR if quiet else (logging.DEBUG if verbose > 1 else logging.INFO if verbose else
                                         logging.WARNING)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    ctx.obj = {"verbosity": -1 if quiet else verbose}


def _register_commands() -> None:
    from . import evaluate, info, models, predict, preview, stac, train, vectorize

    for module in (models, predict, vectorize, info, preview, stac, train, evaluate):
        cli.add_command(module.command)


_register_commands()


if __name__ == "__main__":
    cli()
