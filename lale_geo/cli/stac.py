"""``lale-geo stac``: a validated STAC item for a map already written (``predict --stac`` does it inline).

lale_geo.maps.stac (pystac, jsonschema) is imported only where an item is written: ``predict`` without
``--stac`` imports this module for its options and should not pay for it.
"""

from __future__ import annotations

import datetime

import click

from .options import overwrite_option


def parse_datetime(ctx, param, value: str | None):
    if value is None:
        return None
    text = value[:-1] + "+00:00" if value[-1:] in ("Z", "z") else value  # Python 3.10 takes no Z
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{value!r}: expected an ISO 8601 time like 2024-06-01T10:30:00Z") from None
    # STAC wants UTC; a time without a zone is taken as UTC
    return moment.astimezone(datetime.timezone.utc) if moment.tzinfo else moment.replace(tzinfo=datetime.timezone.utc)


def parse_assets(ctx, param, values: tuple[str, ...]) -> dict[str, str]:
    assets = {}
    for value in values:
        key, sep, path = value.partition("=")
        if not sep or not key or not path:
            raise click.BadParameter(f"{value!r}: expected KEY=PATH like confidence=conf.tif")
        from ..maps.stac import CLASSES_ASSET

        if key == CLASSES_ASSET or key in assets:
            raise click.BadParameter(f"{key!r}: {'the map itself' if key == CLASSES_ASSET else 'given twice'}; "
                                     "use another key")
        assets[key] = path
    return assets


def schema_name(uri: str) -> str:
    """'projection v2.0.0' for an extension schema URI, 'STAC core 1.1.0' for the item schema."""
    parts = uri.split("/")
    if "stac-extensions.github.io" in parts:
        return f"{parts[-3]} {parts[-2]}"
    return f"STAC core {parts[-4].lstrip('v')}" if len(parts) >= 4 else uri


def report(item_path, validated: list[str], unreachable: list[str], quiet: bool) -> None:
    if not quiet:
        click.echo(f"wrote {item_path}: STAC item valid against {', '.join(map(schema_name, validated))}")
    if unreachable:
        from ..maps.stac import stac_schema_folder

        click.echo(f"Warning: {item_path}: could not fetch the {', '.join(map(schema_name, unreachable))} "
                   f"schema(s) to check them; to validate offline, put the schema files under "
                   f"{stac_schema_folder()}/<host>/<path>", err=True)


stac_datetime_help = "Acquisition time of the scene for the STAC item (default: when the map was written)."


@click.command("stac")
@click.argument("src", type=click.Path(dir_okay=False))
@click.option("--output", "-o", "dst", required=True, type=click.Path(dir_okay=False), help="STAC item (JSON).")
@click.option("--asset", "assets", multiple=True, callback=parse_assets, metavar="KEY=PATH",
              help="Another file of the same run, e.g. confidence=conf.tif or polygons=lc.gpkg (repeatable).")
@click.option("--datetime", "moment", callback=parse_datetime, default=None, metavar="ISO8601",
              help=stac_datetime_help)
@overwrite_option
@click.pass_context
def command(ctx, src, dst, assets, moment, overwrite) -> None:
    """A STAC item (projection, file and classification extensions) for the lale-geo map SRC."""
    from ..maps.stac import write_stac_item

    _, validated, unreachable = write_stac_item(src, dst, overwrite=overwrite, extra_assets=assets, datetime=moment)
    report(dst, validated, unreachable, quiet=ctx.obj.get("verbosity", 0) < 0)
