"""The shipped weights' INT8 model against fp32 on this CPU: bare OpenVINO tiles/s and whole `lale-geo
predict` runs, interleaved rounds, with the CPU's integer dot-product instructions (what INT8 needs to pay).

    python benchmarks/precision.py [--size 10000] [--rounds 3] [--skip-cli]

The scene is a real tiled DEFLATE GeoTIFF (``_scenes.real_scene``). Each CLI run is its own process
(imports included), `--precision int8` against `--precision fp32`; the bare figures run each precision's
engine exactly as `predict` builds it (2 streams, batches of 8 tiles of real-valued random pixels).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _process import run_measured
from _scenes import make_scene, make_tile, real_scene

PRECISIONS = ("fp32", "int8")
# CPU flags (as Linux names them) of the integer dot-product instructions INT8 kernels need to beat fp32
DOT_PRODUCT_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8", "asimddp")


def int8_instructions() -> str:
    """This CPU's integer dot-product instructions, from /proc/cpuinfo."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown (no /proc/cpuinfo)"
    flags = {f for line in text.splitlines() if line.startswith(("flags", "Features"))
             for f in line.partition(":")[2].split()}
    return ", ".join(f for f in DOT_PRODUCT_FLAGS if f in flags) or "none"


def bare_rate(precision: str, tiles: int = 160) -> float:
    """Tiles per second of the engine ``predict`` builds at ``precision`` (shipped weights, defaults)."""
    from lale_geo.inference.settings import InferenceSettings
    from lale_geo.io.scaling import Scale

    settings = InferenceSettings(weights="lale_s1_dubai", device="cpu", precision=precision).resolve()
    engine = settings.create_engine()
    batch = np.random.default_rng(0).integers(0, 255, (settings.batch_size, 3, settings.tile_size,
                                                       settings.tile_size)).astype(np.float32)
    engine(batch, Scale.of(0, 255))
    start = time.perf_counter()
    for _ in range(tiles // settings.batch_size):
        engine(batch, Scale.of(0, 255))
    return tiles // settings.batch_size * settings.batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-cli", action="store_true", help="bare engine rates only")
    args = parser.parse_args()
    print(f"CPU: {os.cpu_count()} threads; integer dot-product instructions: {int8_instructions()}")
    rates: dict[str, list[float]] = {p: [] for p in PRECISIONS}
    for _ in range(args.rounds):
        for precision in PRECISIONS:
            rates[precision].append(bare_rate(precision))
    print("| engine | tiles/s | vs fp32 | rounds |\n|---|---|---|---|")
    for precision, values in rates.items():
        median = statistics.median(values)
        print(f"| {precision} (bare) | {median:.1f} | {median / statistics.median(rates['fp32']):.2f} | "
              f"{', '.join(f'{v:.0f}' for v in values)} |", flush=True)
    if args.skip_cli:
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        os.environ.setdefault("LALE_GEO_CACHE", str(folder / "cache"))
        scene = real_scene(args.size, args.size)
        small = make_scene(make_tile(folder), 600, folder)
        cli = [sys.executable, "-m", "lale_geo.cli.main", "-q", "predict"]
        for precision in PRECISIONS:  # caches warm, as for any second run
            run_measured(cli + [str(small), "-o", str(folder / "warm.tif"), "--overwrite", "--precision", precision])
        seconds: dict[str, list[float]] = {p: [] for p in PRECISIONS}
        for _ in range(args.rounds):
            for precision in PRECISIONS:
                command = cli + [str(scene), "-o", str(folder / f"{precision}.tif"), "--overwrite",
                                 "--precision", precision]
                seconds[precision].append(run_measured(command)[0])
    print(f"\n`lale-geo predict`, {args.size}² real file, whole processes, {args.rounds} interleaved rounds")
    print("| precision | seconds | speed vs fp32 | rounds |\n|---|---|---|---|")
    for precision, values in seconds.items():
        median = statistics.median(values)
        print(f"| {precision} | {median:.1f} | {statistics.median(seconds['fp32']) / median:.2f} | "
              f"{', '.join(f'{v:.1f}' for v in values)} |")


if __name__ == "__main__":
    main()
