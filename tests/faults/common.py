"""Shared pieces of the fault-injection tests: tiny scenes, the CLI in a real subprocess (optionally with
a file size limit, i.e. a full disk), and the invariant every fault must keep."""

from __future__ import annotations

import contextlib
import resource
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import Affine

GRID = Affine(2, 0, 500000, 0, -2, 6000000)
CLI_MODEL = ["--random-weights", "lale_s1", "--tile-size", "64", "--engine", "torch", "--device", "cpu"]


def write_scene(path: Path, size: int = 128, seed: int = 0, **profile) -> Path:
    """A small RGB uint8 scene of 8x8 px blocks (so a map has structure but compresses)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (3, -(-size // 8), -(-size // 8))).astype(np.uint8)
    pixels = np.stack([np.kron(b, np.ones((8, 8), np.uint8))[:size, :size] for b in base])
    options = dict(driver="GTiff", width=size, height=size, count=3, dtype="uint8", crs="EPSG:32633",
                   transform=GRID, **profile)
    with rasterio.open(path, "w", **options) as dst:
        dst.write(pixels)
    return path


def _limit_file_size(limit: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write() then fails with EFBIG instead of a kill
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def run_cli(*args, file_size_limit: int | None = None, timeout: int = 120, wait: bool = True):
    """``lale-geo ARGS`` in a subprocess (no bytecode written, so a file size limit hits only outputs)."""
    command = [sys.executable, "-B", "-m", "lale_geo.cli.main", *map(str, args)]
    kwargs = {"preexec_fn": _limit_file_size(file_size_limit)} if file_size_limit else {}
    if not wait:
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, **kwargs)


@contextlib.contextmanager
def file_size_limit(limit: int):
    """A full disk for this process: files cannot grow past ``limit`` bytes (restored afterwards)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    old = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file in ``folder`` (hidden ones included) with its bytes."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def assert_failed_in_one_line(result, *needles: str, codes=(1, 2)) -> str:
    """The command failed with exit 1 or 2 and said so in one line (warnings aside), no traceback."""
    output = result.stdout + result.stderr
    assert result.returncode in codes, output
    assert "Traceback" not in output, output
    errors = [line for line in output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, output
    for needle in needles:
        assert needle in errors[0], output
    return errors[0]


def assert_nothing_lost(folder: Path, before: dict[str, bytes]) -> None:
    """After a failure: every file that existed before is byte-identical, and nothing else was left."""
    assert snapshot(folder) == before


def write_class_map(path: Path, labels: np.ndarray, nodata: int | None = None) -> Path:
    """A one-band class raster of ``labels`` (any integer type) on the test grid."""
    with rasterio.open(path, "w", driver="GTiff", width=labels.shape[1], height=labels.shape[0], count=1,
                       dtype=labels.dtype.name, crs="EPSG:32633", transform=GRID, nodata=nodata) as dst:
        dst.write(labels, 1)
    return path


def invoke(*args):
    """``lale-geo ARGS`` in this process (click's runner), as a result :func:`assert_failed_in_one_line`
    takes: an exception that escaped the command is put into stderr as the traceback a user would see."""
    import traceback
    from types import SimpleNamespace

    from click.testing import CliRunner

    from lale_geo.cli.main import cli

    result = CliRunner().invoke(cli, [str(a) for a in args])
    escaped = result.exception if not isinstance(result.exception, SystemExit) else None
    stderr = "".join(traceback.format_exception(escaped)) if escaped else ""
    return SimpleNamespace(returncode=result.exit_code, stdout=result.output, stderr=stderr)
