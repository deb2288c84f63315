"""Where a cluster run's time goes: `predict --scheduler` on a local cluster of single-threaded workers,
with the seconds each worker spent computing blocks (Dask's task stream) beside the run's wall time, for
workers started with Dask's own environment (MALLOC_TRIM_THRESHOLD_=65536: glibc hands every large freed
block back to the system, so a fresh allocation comes back as page faults) and without that setting.
Close figures mean the tile loop does not depend on the allocator.

    python benchmarks/cluster_workers.py --size 10000
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _scenes import real_scene  # noqa: E402

USER_ENV = dict(os.environ)  # a Nanny leaves OMP_NUM_THREADS=1 behind in its parent: restored after each start


def run(scene: Path, out: Path, workers: int, trim: bool) -> tuple[float, dict[str, float], int]:
    """Wall seconds of one cluster run, compute seconds per worker, and the number of blocks."""
    import dask
    from distributed import Client, LocalCluster, get_task_stream

    from lale_geo.inference.predict import predict

    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ"))
    if not trim:
        environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}), \
            LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        os.environ.clear()
        os.environ.update(USER_ENV)
        predict(scene, out, overwrite=True, scheduler=cluster.scheduler_address)  # workers load and compile
        with get_task_stream(client=client) as stream:
            started = time.perf_counter()
            summary = predict(scene, out, overwrite=True, scheduler=cluster.scheduler_address)
            wall = time.perf_counter() - started
    busy: dict[str, float] = {}
    for task in stream.data:
        for part in task["startstops"]:
            if part["action"] == "compute":
                busy[task["worker"]] = busy.get(task["worker"], 0.0) + part["stop"] - part["start"]
    return wall, busy, summary.cluster.blocks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    scene = real_scene(args.size, args.size)
    print(f"scene: {args.size} x {args.size} real tiled GeoTIFF (distinct blocks); shipped weights, defaults; "
          f"{args.workers} workers x 1 thread; {os.cpu_count()} CPUs; {args.rounds} interleaved round(s)")
    print("| workers' environment | round | wall s | compute s per worker | blocks |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(1, args.rounds + 1):
            for trim, label in ((True, "Dask's (MALLOC_TRIM_THRESHOLD_=65536)"), (False, "without the trim setting")):
                wall, busy, blocks = run(scene, Path(tmp) / "map.tif", args.workers, trim)
                per_worker = ", ".join(f"{s:.1f}" for s in sorted(busy.values()))
                print(f"| {label} | {round_} | {wall:.1f} | {per_worker} | {blocks} |", flush=True)


if __name__ == "__main__":
    main()
