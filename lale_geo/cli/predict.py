"""``lale-geo predict``: a land-cover COG from a raster scene."""

from __future__ import annotations

import logging
import sys
import time
import warnings
from pathlib import Path

import click

from ..files import check_output
from ..inference.engines import ENGINES, ModelAndCard
from ..inference.predict import PredictSummary, plan, predict
from ..inference.settings import PRECISIONS, InferenceSettings
from ..inference.tta import TTA_MODES
from ..weights import DEFAULT_WEIGHTS, random_weights
from .main import cli_message
from .options import (
    batch_size_option,
    device_option,
    overlap_option,
    overwrite_option,
    tile_size_option,
    weights_option,
)
from .stac import parse_datetime, report, stac_datetime_help


def parse_ints(ctx, param, value: str | None):
    if value is None:
        return None
    try:
        return [int(v) for v in value.split(",")]
    except ValueError:
        raise click.BadParameter(f"{value!r}: expected comma-separated integers like 3,2,1") from None


def parse_range(ctx, param, value: str | None):
    if value is None:
        return None
    try:
        lo, hi = (float(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(f"{value!r}: expected MIN,MAX like 0,3000") from None
    return lo, hi


def format_summary(s: PredictSummary) -> str:
    computed = "on a cluster" if s.tiles_computed is None else f"{s.tiles_computed} computed"
    engine = s.cluster.describe(s.width * s.height) if s.cluster else s.engine
    lines = [f"wrote {s.output}: {s.width} x {s.height} px, {s.tiles} tiles ({computed}) "
             f"in {s.seconds:.1f} s ({s.megapixels_per_second:.2f} MP/s, {engine}); scaling {s.scaling}"]
    total = sum(s.class_pixels.values())
    for name, n in s.class_pixels.items():
        share = 100 * n / total if total else 0.0
        area = f"{n * s.pixel_area / 1e4:>12.1f} ha" if s.pixel_area else ""
        lines.append(f"  {name:<28}{n:>12} px {share:6.2f} %{area}")
    lines.append(f"  {'nodata':<28}{s.nodata_pixels:>12} px")
    lines += [f"also wrote {p}" for p in s.extra_outputs]
    return "\n".join(lines)


@click.command("predict")
@click.argument("sources", nargs=-1, metavar="SRC...")
@click.option("--output", "-o", "dst", required=True, type=click.Path(),
              help="Output class raster (COG); with several scenes or a folder of them, a folder (OUT/<scene>.tif).")
@click.option("--band-files", callback=lambda ctx, param, v: v and v.split(","), default=None,
              metavar="RED.tif,GREEN.tif,...",
              help="The scene as one file per band, in the weights' band order (instead of SRC); stacked on the "
                   "finest band's grid, coarser bands resampled bilinearly.")
@click.option("--asset", "assets", multiple=True, metavar="BAND=KEY",
              help="With a STAC item as SRC: the asset of a band, e.g. --asset red=B04 (default: by the assets' "
                   "eo:bands common names, else by key).")
@weights_option
@click.option("--random-weights", "random_model", default=None, metavar="MODEL",
              help="Use an untrained MODEL instead of weights (benchmarks and tests; the output is stamped "
                   "LALE_GEO_UNTRAINED=yes).")
@click.option("--bands", callback=parse_ints, default=None, metavar="B,G,R...",
              help="1-based input bands in the weights' order, e.g. 3,2,1 (default: from colour "
                   "interpretation).")
@click.option("--scale", callback=parse_range, default=None, metavar="MIN,MAX",
              help="Raw values mapped to the model's range (default: decided once per scene).")
@tile_size_option
@overlap_option
@batch_size_option
@device_option
@click.option("--probabilities", type=click.Path(dir_okay=False), default=None,
              help="Also write per-class probabilities (uint8 percent, nodata 255).")
@click.option("--confidence", type=click.Path(dir_okay=False), default=None,
              help="Also write the top-1 probability (uint8 percent, nodata 255).")
@click.option("--vector", type=click.Path(dir_okay=False), default=None,
              help="Also write polygons of the map (.gpkg, .parquet, .fgb, .geojson), as lale-geo vectorize does.")
@click.option("--stac", "stac_item", type=click.Path(dir_okay=False), default=None, metavar="ITEM.json",
              help="Also write a STAC item for the outputs (projection, file and classification extensions), "
                   "validated with pystac.")
@click.option("--stac-datetime", callback=parse_datetime, default=None, metavar="ISO8601",
              help=stac_datetime_help)
@click.option("--engine", type=click.Choice(ENGINES), default="auto", show_default=True,
              help="Inference engine; auto picks the fastest installed (OpenVINO, onnxruntime, torch) on CPU.")
@click.option("--tta", type=click.Choice(TTA_MODES), default="none", show_default=True,
              help="Test-time augmentation: average the logits over flips (4 passes per tile) or flips and "
                   "quarter turns (d4, 8 passes), where the weights were trained with them.")
@click.option("--precision", type=click.Choice(PRECISIONS), default="auto", show_default=True,
              help="fp32, int8 (the weights' INT8 OpenVINO model) or auto: int8 only where the weights' card says "
                   "it passed its check against fp32 (validation macro F1 within 0.5 point, 98 % pixel agreement).")
@click.option("--strict-domain", is_flag=True,
              help="Stop, instead of warning, when the scene is unlike the weights' training data (pixel size, "
                   "brightness, contrast).")
@click.option("--plan", "plan_only", is_flag=True,
              help="Print the tile count, expected peak memory and a time estimate; predict nothing.")
@click.option("--resume", is_flag=True,
              help="Continue an interrupted run of the same command from its last finished rows.")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Run on an existing dask.distributed cluster (e.g. tcp://10.0.0.5:8786).")
@overwrite_option
@click.pass_context
def command(ctx, sources, dst, band_files, assets, weights, random_model, bands, scale, tile_size, overlap,
            batch_size, device, probabilities, confidence, vector, stac_item, stac_datetime, engine, tta, precision,
            strict_domain, plan_only, resume, scheduler, overwrite) -> None:
    """Predict a land-cover map of SRC (any raster GDAL reads) into a georeferenced COG.

    With several scenes (or a folder of them), one engine serves them all and each map goes to the
    folder given with -o; a scene that fails is reported and the others still run."""
    quiet = ctx.obj.get("verbosity", 0) < 0
    settings = InferenceSettings(weights=weights, bands=bands, scale=scale, tile_size=tile_size, overlap=overlap,
                                 batch_size=batch_size, device=device, engine=engine, tta=tta,
                                 precision=precision, strict_domain=strict_domain)
    model = random_weights(random_model) if random_model else None
    if bool(sources) == bool(band_files):
        raise click.UsageError("give the scene as SRC (one or more) or as --band-files, not both" if sources
                               else "give a scene: SRC (a raster, a STAC item, a folder) or --band-files")
    if assets:
        sources = (_item_assets(sources, assets, (model or ModelAndCard.named(weights or DEFAULT_WEIGHTS))[1]),)
    if _many_scenes(sources, dst):
        singles = {"--probabilities": probabilities, "--confidence": confidence, "--vector": vector,
                   "--stac": stac_item, "--plan": plan_only}
        asked = [name for name, value in singles.items() if value]
        if asked:
            raise click.UsageError(f"{', '.join(asked)}: one scene at a time (give a single SRC and an output file)")
        many_scenes(sources, dst, settings, model, overwrite, resume, scheduler, quiet)
        return
    src = band_files or sources[0]
    inputs = list(src) if isinstance(src, list) else [src]
    if plan_only:
        p = plan(src, settings, model=model)
        passes = f", {p.passes_per_tile} network passes per tile (--tta {tta})" if p.passes_per_tile > 1 else ""
        click.echo(f"{src}: {p.width} x {p.height} px, {p.tiles} tiles of {p.tile_size} px (overlap {p.overlap}), "
                   f"{p.batches} batch(es) of {batch_size} on {p.engine}{passes}")
        click.echo(f"time: about {p.network_seconds / 60:.1f} min for the network "
                   f"({p.seconds_per_batch:.2f} s per batch, timed here); reading and writing add a few %")
        click.echo(f"peak memory: about {p.peak_memory_mb:.0f} MB")
        return
    if vector:
        from ..maps.vector_files import check_vector_output, vectorize_to_file  # geopandas: only when asked for

        check_vector_output(vector, overwrite, inputs=[*inputs, dst])
    if stac_datetime and not stac_item:
        raise click.UsageError("--stac-datetime needs --stac ITEM.json")
    if stac_item:
        others = [p for p in (dst, probabilities, confidence, vector) if p]
        check_output(stac_item, overwrite, inputs=[*inputs, *others])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with click.progressbar(length=1, label="tiles", file=sys.stderr, show_pos=True,
                               item_show_func=lambda rate: rate, hidden=quiet or not sys.stderr.isatty()) as bar:
            summary = predict(src, dst, settings, model=model, probabilities=probabilities, confidence=confidence,
                              overwrite=overwrite, resume=resume, scheduler=scheduler, progress=BarProgress(bar))
        if summary.cluster is not None:  # run on the scheduler
            logging.getLogger(__name__).info("cluster: %s", summary.cluster.describe(summary.width * summary.height))
        if vector:
            polygons = vectorize_to_file(dst, vector, overwrite=overwrite)
        if stac_item:
            from ..maps.stac import write_stac_item  # pystac and jsonschema: only when asked for

            extras = {"confidence": confidence, "probabilities": probabilities, "polygons": vector}
            _, validated, unreachable = write_stac_item(
                dst, stac_item, overwrite=overwrite, datetime=stac_datetime,
                extra_assets={key: path for key, path in extras.items() if path}, derived_from=inputs)
    for w in caught:
        click.echo(f"Warning: {w.message}", err=True)
    if not quiet:
        click.echo(format_summary(summary))
        if vector:
            click.echo(f"wrote {vector}: {polygons.polygons} polygons")
    if stac_item:
        report(stac_item, validated, unreachable, quiet)


def _item_assets(sources, assets: tuple[str, ...], card) -> list[str]:
    """The band files a STAC item's ``--asset BAND=KEY`` choices give."""
    from ..io.band_files import is_stac_item, item_band_files

    if len(sources) != 1 or not is_stac_item(sources[0]):
        raise click.UsageError("--asset needs one STAC item (.json) as SRC")
    pairs = dict(a.split("=", 1) for a in assets if "=" in a)
    if len(pairs) != len(assets) or set(pairs) - set(card.bands):
        raise click.BadParameter(f"{', '.join(assets)}: expected BAND=KEY with BAND one of the weights' bands "
                                 f"({', '.join(card.bands)})", param_hint="--asset")
    return item_band_files(sources[0], card.bands, pairs)


def _many_scenes(sources: tuple[str, ...], dst: str) -> bool:
    """Several scenes, a folder of them, or an output folder (an existing one, or a name ending in /)."""
    return len(sources) > 1 or bool(sources) and isinstance(sources[0], str) and Path(sources[0]).is_dir() \
        or Path(dst).is_dir() or dst.endswith("/")


def many_scenes(sources, out_dir: str, settings: InferenceSettings, model, overwrite: bool, resume: bool,
                scheduler: str | None, quiet: bool) -> None:
    """Every scene into ``out_dir``: a line per scene as it ends, then a summary; exit 1 if any failed."""
    from ..inference.scenes import predict_scenes

    bars: list[_OpenedBar] = []

    def progress(scene: str):
        label = Path(scene).name if len(Path(scene).name) <= 24 else Path(scene).name[:21] + "..."
        bars.append(_OpenedBar(click.progressbar(length=1, label=label, file=sys.stderr, show_pos=True,
                                                 item_show_func=lambda r: r, hidden=quiet or not sys.stderr.isatty())))
        return bars[-1]

    def report(result) -> None:
        while bars:
            bars.pop().close()
        for warning in result.warnings:
            click.echo(f"Warning: {warning}", err=True)
        if result.error:
            click.echo(f"Error: {cli_message(result.error)}", err=True)
        elif result.finished_before:
            if not quiet:
                click.echo(f"kept {result.output}: finished by an earlier run")
        elif not quiet:
            click.echo(format_summary(result.summary).splitlines()[0])

    results = predict_scenes(sources, out_dir, settings, model=model, overwrite=overwrite, resume=resume,
                             scheduler=scheduler, progress=progress, done=report)
    failed = [r for r in results if r.error]
    written = sum(r.summary is not None for r in results)
    kept = sum(r.finished_before for r in results)
    line = (f"{len(results)} scene(s): {written} written" + (f", {kept} kept from an earlier run" if kept else "")
            + (f", {len(failed)} failed ({', '.join(Path(r.src).name for r in failed)})" if failed else ""))
    if failed:
        click.echo(line, err=True)
        ctx = click.get_current_context()
        ctx.exit(1)
    if not quiet:
        click.echo(line)


class _OpenedBar:
    """A scene's progress bar, shown from its first tile until the scene ends."""

    def __init__(self, bar) -> None:
        self.bar = bar
        self.inner = BarProgress(bar.__enter__())

    def start(self, tiles: int) -> None:
        self.inner.start(tiles)

    def advance(self, tiles: int) -> None:
        self.inner.advance(tiles)

    def close(self) -> None:
        self.bar.__exit__(None, None, None)


class BarProgress:
    """predict's progress on a click progress bar, with the rate in tiles per second."""

    def __init__(self, bar) -> None:
        self.bar = bar
        self.started = time.perf_counter()

    def start(self, tiles: int) -> None:
        self.bar.length = tiles  # the grid size is known only once the scene is open

    def advance(self, tiles: int) -> None:
        done = self.bar.pos + tiles
        self.bar.update(tiles, f"{done / max(time.perf_counter() - self.started, 1e-9):.2f} tiles/s")
