"""End-to-end prediction throughput and peak memory, per engine, on scenes built from real pixels.

    python benchmarks/predict.py [--size 10000] [--memory-sizes 5000 20000] [--engines torch openvino]

The throughput scene is a VRT mosaic of one real Dubai aerial image (validation tile 4, converted once to a
tiled GeoTIFF), repeated to the requested size. Memory and bytes read are measured on real tiled DEFLATE
GeoTIFFs whose every block differs (``_scenes.real_scene``): a VRT would let GDAL decode only a handful of
blocks and hide cache and I/O costs. Each run is a separate
`lale-geo predict` process; peak RSS is that process's maximum resident set (os.wait4); bytes read from
the input file are counted in a second run of the same command under ``strace -P`` (reads of that
file only: not imports, weights, or the run's own temporary files). The bare-model
figure times the same engine on the same number of tiles (batches of random real-valued tiles), so
end-to-end / bare-model shows what reading, blending and writing cost on top of the network.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _process import run_counted, run_measured, run_reading
from _scenes import make_scene, make_tile, real_scene


def bare_model(engine: str, weights: str, tiles: int, tile_size: int, batch: int) -> tuple[float, str]:
    """Seconds for the engine alone on ``tiles`` tiles (run in this process), built from the same settings
    as the run (precision auto included), and its name."""
    from lale_geo.inference.settings import InferenceSettings
    from lale_geo.io.scaling import Scale

    runner = InferenceSettings(weights=weights, engine=engine, device="cpu", batch_size=batch,
                               tile_size=tile_size).resolve().create_engine()
    data = np.random.default_rng(0).integers(0, 255, (batch, 3, tile_size, tile_size)).astype(np.float32)
    runner(data, Scale.of(0, 255))
    start = time.perf_counter()
    for _ in range(-(-tiles // batch)):
        runner(data, Scale.of(0, 255))
    return time.perf_counter() - start, runner.name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10000)
    parser.add_argument("--memory-sizes", nargs="*", type=int, default=[5000, 10000, 20000])
    parser.add_argument("--wide", nargs=2, type=int, action="append", default=None, metavar=("HEIGHT", "WIDTH"),
                        help="a wide scene for the memory table (default 512 120000)")
    parser.add_argument("--overviews", action="store_true", help="memory scenes carry overviews")
    parser.add_argument("--memory-engine", default=None, help="engine for the memory runs (default: fastest)")
    parser.add_argument("--engines", nargs="+", default=None)
    parser.add_argument("--weights", default="lale_s1_dubai")
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    args.wide = args.wide if args.wide is not None else [[512, 120000]]
    engines = args.engines or ["torch"] + [e for e in ("onnxruntime", "openvino") if importlib.util.find_spec(e)]
    from lale_geo.inference.grid import TileGrid
    from lale_geo.weights import load_card

    card = load_card(args.weights)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        os.environ.setdefault("LALE_GEO_CACHE", str(folder / "cache"))
        tile = make_tile(folder)
        cli = [sys.executable, "-m", "lale_geo.cli.main", "-q", "predict"]
        print(f"scene: mosaic of a real Dubai aerial image, weights {args.weights}, tile {card.tile_size}, "
              f"overlap {card.overlap}, batch {args.batch}, {os.cpu_count()} CPUs")
        print(f"{'engine':<19}{'scene':>8}{'tiles':>7}{'end-to-end MP/s':>17}{'bare model MP/s':>17}"
              f"{'ratio':>7}{'peak RSS MB':>13}")
        fastest = (None, 0.0)
        for engine in engines:
            scene = make_scene(tile, args.size, folder)
            grid = TileGrid(args.size, args.size, card.tile_size, card.overlap)
            out = folder / f"out_{engine}.tif"
            # one short run first so that the ONNX export is cached and not timed
            small = make_scene(tile, 600, folder)
            run_measured(cli + [str(small), "-o", str(folder / "warm.tif"), "--engine", engine, "--overwrite"])
            seconds, rss, _ = run_measured(cli + [str(scene), "-o", str(out), "--engine", engine,
                                               "--batch-size", str(args.batch), "--weights", args.weights])
            bare, name = bare_model(engine, args.weights, len(grid), card.tile_size, args.batch)
            mp = args.size**2 / 1e6
            print(f"{name:<19}{args.size:>8}{len(grid):>7}{mp / seconds:>17.2f}{mp / bare:>17.2f}"
                  f"{bare / seconds:>7.2f}{rss:>13.0f}", flush=True)
            if mp / seconds > fastest[1]:
                fastest = (engine, mp / seconds)
        engine = args.memory_engine or fastest[0]
        print(f"\nmemory and bytes read on real tiled DEFLATE GeoTIFFs (512 px blocks, every block different "
              f"real pixels), engine {engine}")
        print(f"{'scene':>14}{'file MB':>9}{'wall s':>8}{'MP/s':>7}{'peak RSS MB':>13}{'input read MB':>15}"
              f"{'read / file':>13}")

        def measured(scene: Path, out: Path) -> tuple[float, float, int]:
            """Peak RSS from a plain run; the bytes read from the input file from a second run under strace."""
            command = cli + [str(scene), "-o", str(out), "--engine", engine, "--overwrite", "--batch-size",
                             str(args.batch), "--weights", args.weights]
            seconds, rss, _, _ = run_counted(command)
            _, _, input_bytes = run_reading(command, scene)
            return seconds, rss, input_bytes

        rss_by_size = {}
        shapes = [(size, size) for size in args.memory_sizes] + [tuple(s) for s in args.wide]
        for height, width in shapes:
            scene = real_scene(height, width, overviews=args.overviews)
            seconds, rss, input_bytes = measured(scene, folder / "mem.tif")
            size_mb = scene.stat().st_size / 1e6
            read_mb = (input_bytes or float("nan")) / 1e6
            rss_by_size[f"{height}x{width}"] = round(rss)
            print(f"{f'{height}x{width}':>14}{size_mb:>9.0f}{seconds:>8.1f}{height * width / 1e6 / seconds:>7.2f}"
                  f"{rss:>13.0f}{read_mb:>15.0f}{read_mb / size_mb:>13.2f}", flush=True)
        squares = [f"{s}x{s}" for s in sorted(args.memory_sizes)]
        if len(squares) >= 2:
            print(f"\npeak RSS {squares[-1]} / {squares[0]}: {rss_by_size[squares[-1]] / rss_by_size[squares[0]]:.2f}x")
        print("input read = bytes the run read from the input file (strace -P, a second run of the same command)")
        print(json.dumps({"rss_mb": rss_by_size}))


if __name__ == "__main__":
    main()
