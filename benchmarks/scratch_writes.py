"""How fast the temporary map of a run is written, by compression: a real class map's rows written in
bands of 192 rows to untiled strips, as ``RasterWriter`` writes them (the file reopened per band).

    python benchmarks/scratch_writes.py MAP.tif [--rounds 3]

MAP.tif: a map ``lale-geo predict`` wrote (e.g. of benchmarks/_scenes.py's real scene).

Kept for the record of a decision: PACKBITS writes a real map's rows ten times faster, but the whole
``lale-geo predict`` gained about 0.6 s of 23 at 10,000² (by hand: an interleaved A/B of whole processes,
3 rounds; within the noise), and on a noisy map (salt and
pepper, random weights) run lengths buy nothing: the temporary file is the raw size, which on a scene of
100,000² px would be 10 GB of disk instead of about 1. The full-disk fault test caught that.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings

import rasterio
from rasterio.windows import Window


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("map")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
    with rasterio.open(args.map) as src:
        labels = src.read()
    _, height, width = labels.shape
    variants = {"ZSTD level 1 (what runs)": dict(compress="ZSTD", zstd_level=1),
                "PACKBITS (tried)": dict(compress="PACKBITS")}
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    sizes = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "scratch.tif")
        for _ in range(args.rounds):
            for name, options in variants.items():
                profile = dict(driver="GTiff", width=width, height=height, count=1, dtype="uint8", tiled=False,
                               blockysize=16, **options)
                with rasterio.open(path, "w", **profile):
                    pass
                start = time.perf_counter()
                for y in range(0, height, 192):
                    rows = labels[:, y:y + 192]
                    with rasterio.open(path, "r+") as dst:
                        dst.write(rows, window=Window(0, y, width, rows.shape[1]))
                seconds[name].append(time.perf_counter() - start)
                sizes[name] = os.path.getsize(path)
    print(f"{args.map}: {width} x {height} class map, bands of 192 rows, medians of {args.rounds} interleaved rounds")
    print("| compression | seconds | file MB | of the raw size |\n|---|---|---|---|")
    for name in variants:
        print(f"| {name} | {statistics.median(seconds[name]):.2f} | {sizes[name] / 1e6:.1f} | "
              f"{sizes[name] / (width * height):.1%} |")


if __name__ == "__main__":
    main()
