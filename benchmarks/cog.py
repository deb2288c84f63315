"""Finishing a class map as a COG: MODE overviews built while the rows are written (what lale-geo does)
against GDAL building them from the finished map in the COG copy (what it did before).

    python benchmarks/cog.py [--size 10000] [--rounds 3]

The map is a mosaic of the Dubai validation masks (real land-cover labels, 5 classes, unlabelled pixels as
nodata), written in bands of 192 rows as `lale-geo predict` writes a 256/64 grid. Both variants write the same rows to
the same temporary strips; the table shows the time spent in the row writes and in the final COG step
(medians of interleaved rounds), and how many pixels of each overview level agree between the two.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.transform import from_origin

from lale_geo.io.writers import COG_BLOCKSIZE, RasterWriter
from lale_geo.training.datasets import load_split, resolve_class_table

DUBAI = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "dubai-aerial"

BAND_ROWS = 192


def label_mosaic(size: int) -> np.ndarray:
    """size x size class ids: the validation masks side by side, repeated (255 = unlabelled)."""
    masks = [s.mask for s in load_split(DUBAI, resolve_class_table(DUBAI), "val")]
    out = np.full((size, size), 255, np.uint8)
    i, y = 0, 0
    while y < size:
        x, row_height = 0, 0
        while x < size:
            mask = masks[i % len(masks)][:size - y, :size - x]
            out[y:y + mask.shape[0], x:x + mask.shape[1]] = mask
            x, row_height, i = x + mask.shape[1], max(row_height, mask.shape[0]), i + 1
        y += row_height
    return out


def ours(labels: np.ndarray, out: Path, profile: dict) -> tuple[float, float]:
    start = time.perf_counter()
    writer = RasterWriter(out, profile)
    for y0 in range(0, labels.shape[0], BAND_ROWS):
        writer.write_rows(y0, labels[y0:y0 + BAND_ROWS])
    written = time.perf_counter()
    writer.commit()
    return written - start, time.perf_counter() - written


def gdal_overviews(labels: np.ndarray, out: Path, profile: dict) -> tuple[float, float]:
    """The previous path: the same strips, then GDAL's COG copy computes the MODE overviews."""
    strips = out.with_suffix(".strips.tif")
    start = time.perf_counter()
    with rasterio.open(strips, "w", **dict(profile, tiled=False, compress="ZSTD", zstd_level=1, blockysize=16)):
        pass
    for y0 in range(0, labels.shape[0], BAND_ROWS):
        rows = labels[None, y0:y0 + BAND_ROWS]
        with rasterio.open(strips, "r+") as dst:
            dst.write(rows, window=rasterio.windows.Window(0, y0, rows.shape[2], rows.shape[1]))
    written = time.perf_counter()
    rasterio.shutil.copy(strips, out, driver="COG", COMPRESS="DEFLATE", BLOCKSIZE=COG_BLOCKSIZE,
                         OVERVIEW_RESAMPLING="MODE", NUM_THREADS="ALL_CPUS", BIGTIFF="IF_SAFER")
    strips.unlink()
    return written - start, time.perf_counter() - written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    labels = label_mosaic(args.size)
    profile = dict(driver="GTiff", width=args.size, height=args.size, count=1, dtype="uint8", nodata=255,
                   crs="EPSG:32640", transform=from_origin(500000, 2800000, 0.5, 0.5))
    variants = {"overviews while writing (lale-geo)": ours, "GDAL MODE overviews in the COG copy": gdal_overviews}
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    with tempfile.TemporaryDirectory() as tmp:
        outs = {name: Path(tmp) / f"{i}.tif" for i, name in enumerate(variants)}
        for _ in range(args.rounds):
            for name, run in variants.items():
                outs[name].unlink(missing_ok=True)
                times[name].append(run(labels, outs[name], profile))
        print(f"{args.size} x {args.size} class map, rows written in bands of {BAND_ROWS}; "
              f"median of {args.rounds} interleaved rounds")
        print("| variant | row writes s | COG step s | total s |")
        print("|---|---|---|---|")
        for name, runs in times.items():
            w, c = (statistics.median(r[i] for r in runs) for i in (0, 1))
            print(f"| {name} | {w:.2f} | {c:.2f} | {w + c:.2f} |")
        first, second = outs.values()
        with rasterio.open(first) as a:
            levels = a.overviews(1)
        agreement = []
        for level in range(len(levels)):
            with rasterio.open(first, OVERVIEW_LEVEL=level) as a, rasterio.open(second, OVERVIEW_LEVEL=level) as b:
                agreement.append(f"1/{levels[level]}: {100 * (a.read(1) == b.read(1)).mean():.2f} %")
        print("overview pixels agreeing:", ", ".join(agreement))


if __name__ == "__main__":
    main()
