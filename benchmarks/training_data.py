"""Training data from one big GeoTIFF scene: decoded into memory against read window by window.

    python benchmarks/training_data.py [--size 10000] [--steps 20]

Builds a 3-band uint8 scene (a real RGB fixture tiled over SIZE x SIZE) and a label raster on its grid
(3 values), then, each way in its own process: load the split, measure the band statistics, and draw
STEPS batches of 16 random 256 px crops (what `lale-geo train` does before the network). Peak RSS is
that process's maximum resident set (os.wait4).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import rasterio
from _process import run_measured
from rasterio.windows import Window

FIXTURE = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "rasterio" / "RGB.byte.tif"

LOAD_AND_SAMPLE = """
import sys, time
from lale_geo.training.datasets import ClassTable, load_split
from lale_geo.training.trainer import CropSampler, normalisation_for
root, limit, steps = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
table = ClassTable.read(root + "/classes.json")
start = time.perf_counter()
samples = load_split(root, table, "train", in_memory_limit_mb=limit)
loaded = time.perf_counter() - start
generic = ClassTable(**{**table.__dict__, "bands": ("b1", "b2", "b3")})  # forces measured statistics
normalisation_for(generic, samples)
sampler = CropSampler(samples, 256, seed=0)
start = time.perf_counter()
for _ in range(steps):
    sampler.batch(16)
per_batch = (time.perf_counter() - start) / steps
print(type(samples[0]).__name__, f"{loaded:.1f}", f"{per_batch * 1000:.0f}")
"""


def build_scene(root: Path, size: int) -> None:
    (root / "a" / "images").mkdir(parents=True)
    (root / "a" / "masks").mkdir()
    (root / "classes.json").write_text(json.dumps({
        "name": "bench", "classes": [{"id": i, "name": f"c{i}", "value": v} for i, v in enumerate((10, 20, 30))],
        "ignore": [0], "splits": {"train": ["a"]}}))
    with rasterio.open(FIXTURE) as src:
        rgb = src.read()
    profile = {"driver": "GTiff", "width": size, "height": size, "crs": "EPSG:32618", "tiled": True,
               "blockxsize": 512, "blockysize": 512, "compress": "deflate",
               "transform": rasterio.transform.from_origin(0, size * 10, 10, 10)}
    with rasterio.open(root / "a" / "images" / "s.tif", "w", count=3, dtype="uint8", **profile) as img, \
            rasterio.open(root / "a" / "masks" / "s.tif", "w", count=1, dtype="uint8", **profile) as lab:
        for y in range(0, size, 512):
            rows = min(512, size - y)
            reps = (1, -(-rows // rgb.shape[1]) + 1, -(-size // rgb.shape[2]) + 1)
            block = np.tile(rgb, reps)[:, (y % rgb.shape[1]):(y % rgb.shape[1]) + rows, :size]
            img.write(block, window=Window(0, y, size, rows))
            labels = np.choose(np.digitize(block.mean(0), [60, 120]), [10, 20, 30]).astype(np.uint8)
            labels[block.max(0) == 0] = 0
            lab.write(labels, 1, window=Window(0, y, size, rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10000)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        build_scene(Path(tmp), args.size)
        scene_mb = args.size**2 * 3 / 2**20
        print(f"scene {args.size} x {args.size} x 3 uint8 ({scene_mb:.0f} MB decoded) + labels; "
              f"{args.steps} batches of 16 crops of 256 px")
        print(f"{'way':<34}{'load s':>8}{'ms/batch':>10}{'peak RSS MB':>13}")
        for name, limit in (("decoded into memory", 1e9), ("window by window", 0)):
            seconds, rss, out = run_measured([sys.executable, "-c", LOAD_AND_SAMPLE, tmp, str(limit),
                                              str(args.steps)])
            kind, loaded, per_batch = out.split()
            print(f"{name + ' (' + kind + ')':<34}{loaded:>8}{per_batch:>10}{rss:>13.0f}", flush=True)
        _, rss, _ = run_measured([sys.executable, "-c", "import lale_geo.training.trainer; print(0)"])
        print(f"{'(imports only)':<34}{'':>8}{'':>10}{rss:>13.0f}")


if __name__ == "__main__":
    main()
