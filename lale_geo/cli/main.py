"""``lale-geo``: the click group, logging set-up, and the one place library errors become messages."""

from __future__ import annotations

import contextlib
import importlib
import logging
import re
import signal

import click

from .. import __version__
from ..errors import LaleGeoError, message_line

# Command name -> (module, one-line summary): a command's module is imported only when that command
# runs, so `lale-geo --help` and light commands such as `info` never import torch. The summaries are
# the commands' own first docstring lines (a test keeps them equal).
COMMANDS = {
    "adapt": ("adapt", "Fine-tune weights on a few labelled images of a new area; keep them only if they beat the "
                       "start."),
    "evaluate": ("evaluate", "Per-class IoU/F1/precision/recall, macro F1, mIoU, accuracy and confusion matrix "
                             "on a split."),
    "export": ("export", "Export weights as an ONNX model with GeoDeep/Deepness metadata ([0, 1] tiles in, "
                         "probabilities out)."),
    "info": ("info", "Per-class pixel counts and areas (m2, ha) of the class raster SRC, and how it was made."),
    "models": ("models", "List registered models (params, GMACs with attention matmuls, output stride) and "
                         "shipped weights."),
    "predict": ("predict", "Predict a land-cover map of SRC (any raster GDAL reads) into a georeferenced COG."),
    "quantize": ("quantize", "Make an INT8 OpenVINO model of the weights and check it against fp32 on validation "
                             "images."),
    "preview": ("preview", "Quicklook PNG of the class map SRC (downsampled through its overviews), with a legend."),
    "stac": ("stac", "A STAC item (projection, file and classification extensions) for the lale-geo map SRC."),
    "train": ("train", "Train MODEL on DATA and keep the weights that score best on the validation split."),
    "vectorize": ("vectorize", "Polygons of the class raster SRC with class names and areas (m2), seam-free at "
                               "any size."),
}

# The library names its parameters as Python callers write them (tile_size=300, overwrite=True); the
# CLI user reads the flags instead.
_PARAMETER = re.compile(r"\b(tile_size|overlap|bands|scale|batch_size|engine|device|resume|overwrite|classes"
                        r"|min_area|min_pixels|tta|strict_domain|precision)(=True\b|=)")


def cli_message(message: str) -> str:
    """A library message with parameter names turned into the matching command-line flags."""
    def flag(match: re.Match) -> str:
        name = "--" + match.group(1).replace("_", "-")
        return name if match.group(2) == "=True" else name + " "
    return _PARAMETER.sub(flag, message)


class LaleGeoGroup(click.Group):
    """Loads commands on demand; turns library errors into one-line messages (exit 1); ``-v`` shows the
    traceback instead."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        return importlib.import_module(f"{__package__}.{COMMANDS[name][0]}").command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list from the summaries above, importing no command."""
        with formatter.section("Commands"):
            formatter.write_dl([(name, summary) for name, (_, summary) in sorted(COMMANDS.items())])

    def invoke(self, ctx: click.Context):
        verbose = bool(ctx.obj and ctx.obj.get("verbosity", 0) > 0)
        try:
            return super().invoke(ctx)
        except LaleGeoError as e:
            if verbose:
                raise
            raise click.ClickException(cli_message(str(e))) from None
        except KeyboardInterrupt as e:
            # click's own "Aborted!" says neither what was kept nor how to go on
            click.echo(f"Error: {interrupted_message(ctx.invoked_subcommand, e)}", err=True)
            ctx.exit(TERMINATED if isinstance(e, Terminated) else INTERRUPTED)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as e:  # a bug of ours (or an error we have not met): one line, -v for the traceback
            if verbose:
                raise
            raise click.ClickException(
                f"internal error ({type(e).__name__}: {message_line(e)}); this is a bug worth reporting with the "
                "command and the output of the same command run with -v") from None


INTERRUPTED = 130  # the shell's code for a command ended by SIGINT (128 + 2)
TERMINATED = 143  # ... and by SIGTERM (128 + 15)


class Terminated(KeyboardInterrupt):
    """SIGTERM, turned into an interrupt so that a run stops as it does on Ctrl-C: resumable, and saying so."""


def _terminate(signum, frame) -> None:
    raise Terminated()


def handle_sigterm() -> None:
    """Make SIGTERM behave like Ctrl-C in this process (the main thread only can install handlers)."""
    with contextlib.suppress(ValueError):
        signal.signal(signal.SIGTERM, _terminate)


def interrupted_message(command: str | None, interrupt: BaseException | None = None) -> str:
    """The one line printed on Ctrl-C or SIGTERM: for predict, how to continue from the rows already written."""
    what = "terminated (SIGTERM)" if isinstance(interrupt, Terminated) else "interrupted"
    if command == "predict":
        return (f"{what}; the rows finished so far are kept: run the same command with --resume to "
                "continue from them")
    return f"{what}; nothing was written under the output name"


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
    handle_sigterm()


if __name__ == "__main__":
    cli()
