"""Throughput of every prediction path on one scene: the CLI's predict, segment() + rioxarray, and
predict on a local dask.distributed cluster, with the maps' agreement and the bytes the client received.

    python benchmarks/paths.py [--size 4000] [--rounds 2] [--workers 2]

The scene is a real tiled DEFLATE GeoTIFF whose every block holds different real pixels
(``_scenes.real_scene``). Every path runs in its own fresh process with the shipped weights and
the defaults (engine auto, device auto); the ONNX export is cached beforehand and the cluster
(``--workers`` single-threaded worker processes) is started and warmed before timing, as a user's would
be. Times are measured inside each process from the call to the published file, and as whole processes
(start-up, imports and connecting to the cluster included: what a user waits for). Paths run interleaved
(A B C A B C ...) and medians are reported: these machines are noisy.
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
from pathlib import Path

import rasterio
import rasterio.shutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _scenes import labels, make_scene, make_tile, real_scene  # noqa: E402

CLI = """
import json, sys, time
from lale_geo.inference.predict import predict
start = time.perf_counter()
summary = predict(sys.argv[1], sys.argv[2], overwrite=True)
print(json.dumps({"seconds": time.perf_counter() - start, "engine": summary.engine}))
"""

SEGMENT = """
import json, sys, threading, time
import rioxarray, lale_geo
start = time.perf_counter()
da = rioxarray.open_rasterio(sys.argv[1], chunks=True, lock=False)
classes = lale_geo.segment(da)
classes.rio.to_raster(sys.argv[2], tiled=True, compress="DEFLATE", lock=threading.Lock())
print(json.dumps({"seconds": time.perf_counter() - start, "engine": "segment (dask threads)"}))
"""

CLUSTER = """
import json, sys, time
from lale_geo.inference.predict import predict
start = time.perf_counter()
summary = predict(sys.argv[1], sys.argv[2], overwrite=True, scheduler=sys.argv[3])
c = summary.cluster
print(json.dumps({"seconds": time.perf_counter() - start, "engine": c.engine, "bytes": c.bytes_received,
                  "blocks": c.blocks, "workers": c.workers}))
"""


# The environment the paths run in, taken before any cluster starts: a dask Nanny sets OMP_NUM_THREADS=1 (and
# MALLOC_TRIM_THRESHOLD_) in its parent's os.environ and leaves them there, which would run the CLI path on
# one thread.
USER_ENV = dict(os.environ)


def run(code: str, *args: str) -> dict:
    """The child's own report, plus ``process_seconds``: the whole process's wall time (start-up, imports
    and, for the cluster path, connecting to the scheduler included), what a user waits for."""
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                            env=USER_ENV)
    if result.returncode:
        raise RuntimeError(result.stderr[-3000:])
    report = json.loads(result.stdout.strip().splitlines()[-1])
    report["process_seconds"] = time.perf_counter() - started
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    from distributed import Client, LocalCluster

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        os.environ.setdefault("LALE_GEO_CACHE", str(folder / "cache"))
        USER_ENV.setdefault("LALE_GEO_CACHE", os.environ["LALE_GEO_CACHE"])
        scene = real_scene(args.size, args.size)
        small = folder / "small.tif"
        rasterio.shutil.copy(make_scene(make_tile(folder), 600, folder), small, driver="GTiff")
        run(CLI, small, folder / "warm.tif")  # caches the ONNX export: no path pays for it
        with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster):
            run(CLUSTER, small, folder / "warm_cluster.tif", cluster.scheduler_address)  # workers load the model
            paths = {"lale-geo predict (local)": (CLI, ()),
                     "segment() + rio.to_raster (Dask threads)": (SEGMENT, ()),
                     f"predict --scheduler ({args.workers} workers x 1 thread)":
                         (CLUSTER, (cluster.scheduler_address,))}
            times: dict[str, list[float]] = {name: [] for name in paths}
            whole: dict[str, list[float]] = {name: [] for name in paths}
            info: dict[str, dict] = {}
            for _ in range(args.rounds):
                for i, (name, (code, extra)) in enumerate(paths.items()):
                    info[name] = run(code, scene, folder / f"map_{i}.tif", *extra)
                    times[name].append(info[name]["seconds"])
                    whole[name].append(info[name]["process_seconds"])
        reference = labels(folder / "map_0.tif")
        mp = args.size**2 / 1e6
        first = next(iter(paths))
        cli_rate = mp / statistics.median(times[first])
        cli_whole = statistics.median(whole[first])
        print(f"scene: {args.size} x {args.size} real tiled GeoTIFF (distinct blocks); shipped weights, defaults; "
              f"{os.cpu_count()} CPUs; median of {args.rounds} interleaved rounds")
        print("| path | engine | seconds in process | vs the CLI | whole process s | vs the CLI | "
              "map agreement with the CLI | client bytes/px |")
        print("|---|---|---|---|---|---|---|---|")
        for i, name in enumerate(paths):
            seconds, process = statistics.median(times[name]), statistics.median(whole[name])
            agree = (labels(folder / f"map_{i}.tif") == reference).mean()
            received = info[name].get("bytes")
            per_px = f"{received / args.size**2:.2f}" if received is not None else "-"
            blocks = f", {info[name]['blocks']} blocks" if "blocks" in info[name] else ""
            print(f"| {name} | {info[name]['engine']}{blocks} | {seconds:.1f} | {mp / seconds / cli_rate:.2f} | "
                  f"{process:.1f} | {cli_whole / process:.2f} | {100 * agree:.3f} % | {per_px} |")
        print("raw seconds in process:", json.dumps(times))
        print("raw whole-process seconds:", json.dumps(whole))


if __name__ == "__main__":
    main()
