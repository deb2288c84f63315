"""Predicting a scene over HTTP: bytes fetched before the first tile and in all, against the file's size,
and the time against the same file read locally.

    python benchmarks/remote.py [--size 6000] [--overviews] [--repeat 2]

The scene is a real tiled DEFLATE GeoTIFF (512 px blocks, every block different real pixels; see
``_scenes.real_scene``), served from a local HTTP server on 127.0.0.1 that answers byte ranges, as an
object store does, and counts the bytes it sends. "Before the first tile" is when ``predict`` reports
the tile count (the scene is open, scaling and the domain guard are decided, no tile has been read).
Runs alternate remote and local (A B A B) on the default engine; medians are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from _scenes import real_scene

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.helpers import RANGE_SERVER  # noqa: E402  (the range server the tests use, counting bytes)


def served(base: str) -> int:
    with urllib.request.urlopen(f"{base}/__stats") as answer:
        return json.loads(answer.read())["bytes"]


class FirstTile:
    """Notes the bytes served when predict reports its tile count (before any tile is read)."""

    def __init__(self, base: str | None) -> None:
        self.base, self.before = base, None

    def start(self, tiles: int) -> None:
        self.before = served(self.base) if self.base else None

    def advance(self, tiles: int) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=6000)
    parser.add_argument("--overviews", action="store_true")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--weights", default="lale_s1_dubai")
    args = parser.parse_args()
    from lale_geo import predict

    scene = real_scene(args.size, args.size, overviews=args.overviews)
    size_mb = scene.stat().st_size / 1e6
    server = subprocess.Popen([sys.executable, "-c", RANGE_SERVER, str(scene.parent)], stdout=subprocess.PIPE,
                              text=True)
    results = {"remote": [], "local": []}
    try:
        base = f"http://127.0.0.1:{server.stdout.readline().strip()}"
        url = f"{base}/{scene.name}"
        with tempfile.TemporaryDirectory() as tmp:
            os.environ.setdefault("LALE_GEO_CACHE", str(Path(tmp) / "cache"))
            predict(real_scene(512, 512), Path(tmp) / "warm.tif", weights=args.weights)  # engine export cached
            for _ in range(args.repeat):
                for where in ("remote", "local"):
                    first = FirstTile(base if where == "remote" else None)
                    counted = served(base)
                    started = time.perf_counter()
                    predict(url if where == "remote" else scene, Path(tmp) / f"{where}.tif", weights=args.weights,
                            overwrite=True, progress=first)
                    seconds = time.perf_counter() - started
                    total = served(base) - counted
                    before = first.before - counted if first.before is not None else None
                    results[where].append((seconds, before, total))
            same = (Path(tmp) / "remote.tif").read_bytes() == (Path(tmp) / "local.tif").read_bytes()
    finally:
        server.terminate()
        server.wait()
    remote_s = statistics.median(s for s, _, _ in results["remote"])
    local_s = statistics.median(s for s, _, _ in results["local"])
    before = max(b for _, b, _ in results["remote"]) / 1e6
    total = max(t for _, _, t in results["remote"]) / 1e6
    print(f"scene {args.size}x{args.size}, {'with' if args.overviews else 'without'} overviews, {size_mb:.1f} MB, "
          f"{os.cpu_count()} CPUs, weights {args.weights}, median of {args.repeat} (A B A B)")
    print(f"{'':<28}{'MB':>8}{'share of file':>15}")
    print(f"{'fetched before first tile':<28}{before:>8.2f}{before / size_mb:>15.3f}")
    print(f"{'fetched in all':<28}{total:>8.2f}{total / size_mb:>15.3f}")
    print(f"time remote {remote_s:.1f} s, local {local_s:.1f} s (remote / local {remote_s / local_s:.2f}); "
          f"maps byte-identical: {same}")


if __name__ == "__main__":
    main()
