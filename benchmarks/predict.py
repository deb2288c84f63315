"""End-to-end prediction throughput and peak memory, per engine, on scenes built from real pixels.

    python benchmarks/predict.py [--size 10000] [--memory-sizes 5000 20000] [--engines torch openvino]

The scene is a VRT mosaic of one real Dubai aerial image (validation tile 4, converted once to a tiled
GeoTIFF), repeated to the requested size: real pixels, any size, no GBs on disk. Each run is a separate
`lale-geo predict` process; peak RSS is that process's maximum resident set (os.wait4). The bare-model
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
from _process import run_measured
from _scenes import make_scene, make_tile


def bare_model(engine: str, weights: str, tiles: int, tile_size: int, batch: int) -> tuple[float, str]:
    """Seconds for the engine alone on ``tiles`` tiles (run in this process), built from the same settings
    as the run (precision auto included), and its name."""
    from lale_geo.settings import InferenceSettings

    runner = InferenceSettings(weights=weights, engine=engine, device="cpu", batch_size=batch,
                               tile_size=tile_size).resolve().create_engine()
    data = np.random.default_rng(0).integers(0, 255, (batch, 3, tile_size, tile_size)).astype(np.float32)
    runner(data, (0, 255))
    start = time.perf_counter()
    for _ in range(-(-tiles // batch)):
        runner(data, (0, 255))
    return time.perf_counter() - start, runner.name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10000)
    parser.add_argument("--memory-sizes", nargs="*", type=int, default=[5000, 20000])
    parser.add_argument("--memory-engine", default=None, help="engine for the memory runs (default: fastest)")
    parser.add_argument("--engines", nargs="+", default=None)
    parser.add_argument("--weights", default="lale_s1_dubai")
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    engines = args.engines or ["torch"] + [e for e in ("onnxruntime", "openvino") if importlib.util.find_spec(e)]
    from lale_geo.tiling import TileGrid
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
        rss_by_size = {}
        for size in args.memory_sizes:
            scene = make_scene(tile, size, folder)
            seconds, rss, _ = run_measured(cli + [str(scene), "-o", str(folder / f"mem_{size}.tif"), "--engine", engine,
                                               "--batch-size", str(args.batch), "--weights", args.weights])
            rss_by_size[size] = rss
            print(f"{engine:<19}{size:>8}{len(TileGrid(size, size, card.tile_size, card.overlap)):>7}"
                  f"{size**2 / 1e6 / seconds:>17.2f}{'':>17}{'':>7}{rss:>13.0f}", flush=True)
        if len(rss_by_size) >= 2:
            sizes = sorted(rss_by_size)
            print(f"\npeak RSS {sizes[-1]}^2 / {sizes[0]}^2: {rss_by_size[sizes[-1]] / rss_by_size[sizes[0]]:.2f}x")
        print(json.dumps({"rss_mb": rss_by_size}))


if __name__ == "__main__":
    main()
