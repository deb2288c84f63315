"""Vectorize time and peak memory on a real 10,000 x 10,000 class raster, ours against the whole-array way.

    python benchmarks/vectorize.py [--size 10000] [--block 2048]

The raster is a window of the real ESA WorldCover 2021 tile in ../shared/fixtures/worldcover (São Tomé:
land classes, water, nodata), written once as a tiled GeoTIFF. Each method runs in its own process;
peak RSS is that process's maximum resident set (os.wait4).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import rasterio
from _process import run_measured
from rasterio.windows import Window

WORLDCOVER = (Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "worldcover" /
              "ESA_WorldCover_10m_2021_v200_N00E006_Map.tif")

OURS = """
import sys
from lale_geo.maps.vector_files import vectorize_to_file
summary = vectorize_to_file(sys.argv[1], sys.argv[2], block_size=int(sys.argv[3]), min_pixels=int(sys.argv[4]),
                            simplify=float(sys.argv[5]) or None)
print(summary.polygons)
"""

WHOLE_ARRAY = """
import sys
import geopandas as gpd
import rasterio, rasterio.features
from shapely.geometry import shape
with rasterio.open(sys.argv[1]) as src:
    labels = src.read(1)
    shapes = list(rasterio.features.shapes(labels, mask=labels != src.nodata, transform=src.transform))
    frame = gpd.GeoDataFrame({"class_id": [int(v) for _, v in shapes]},
                             geometry=[shape(g) for g, _ in shapes], crs=src.crs)
frame["area_m2"] = frame.to_crs("EPSG:6933").area
frame.to_file(sys.argv[2], driver="GPKG", engine="pyogrio")
print(len(frame))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10000)
    parser.add_argument("--row", type=int, default=22000)
    parser.add_argument("--col", type=int, default=5000)
    parser.add_argument("--block", type=int, default=2048)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        raster = Path(tmp) / "worldcover.tif"
        with rasterio.open(WORLDCOVER) as src:
            window = Window(args.col, args.row, args.size, args.size)
            profile = dict(src.profile, width=args.size, height=args.size, transform=src.window_transform(window))
            with rasterio.open(raster, "w", **profile) as dst:
                for y in range(0, args.size, 1024):
                    part = Window(args.col, args.row + y, args.size, min(1024, args.size - y))
                    dst.write(src.read(1, window=part), 1, window=Window(0, y, args.size, part.height))
                dst.update_tags(legend=src.tags()["legend"])
        print(f"WorldCover window {args.size} x {args.size} at row {args.row}, col {args.col}; block {args.block}")
        print(f"{'method':<36}{'seconds':>9}{'peak RSS MB':>13}{'polygons':>10}")
        rows = [
            ("ours (no sieve)", [sys.executable, "-c", OURS, str(raster), f"{tmp}/a.gpkg", str(args.block), "0", "0"]),
            ("ours (no sieve), FlatGeobuf", [sys.executable, "-c", OURS, str(raster), f"{tmp}/a.fgb",
                                             str(args.block), "0", "0"]),
            ("ours (no sieve), GeoParquet", [sys.executable, "-c", OURS, str(raster), f"{tmp}/a.parquet",
                                              str(args.block), "0", "0"]),
            ("ours (sieve 10 px + simplify)", [sys.executable, "-c", OURS, str(raster), f"{tmp}/b.gpkg",
                                               str(args.block), "10", "0.00005"]),
            ("whole array (shapes + geopandas)", [sys.executable, "-c", WHOLE_ARRAY, str(raster), f"{tmp}/c.gpkg"]),
        ]
        rows += [("(imports only: ours)", [sys.executable, "-c", "import lale_geo.maps.polygons, pyogrio; print(0)"]),
                 ("(imports only: whole array)", [sys.executable, "-c",
                                                  "import geopandas, rasterio.features, shapely; print(0)"])]
        polygonize = shutil.which("gdal_polygonize.py") or shutil.which("gdal_polygonize")
        if polygonize:
            rows.append(("gdal_polygonize", [polygonize, "-q", str(raster), "-f", "GPKG", f"{tmp}/d.gpkg"]))
        else:
            print("(gdal_polygonize not installed: skipped)")
        results = {}
        for name, command in rows:
            seconds, rss, out = run_measured(command)
            count = out.strip().splitlines()[-1] if out.strip() else ""
            results[name] = (seconds, rss)
            print(f"{name:<36}{seconds:>9.1f}{rss:>13.0f}{count:>10}", flush=True)
        ours, whole = results["ours (no sieve)"], results["whole array (shapes + geopandas)"]
        print(f"\nours / whole array: time {ours[0] / whole[0]:.2f}x, peak RSS {ours[1] / whole[1]:.2f}x")


if __name__ == "__main__":
    main()
