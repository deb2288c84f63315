"""Many scenes in one run against one run per scene: three real-pixel GeoTIFFs (`_scenes.real_scene`), the
shipped weights and defaults, whole `lale-geo predict` processes (start-up, weights, engine compile
included), alternated and repeated.

    python benchmarks/scenes.py [--size 1500] [--repeats 2]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from _process import run_measured
from _scenes import real_scene


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1500)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    cli = [sys.executable, "-m", "lale_geo.cli.main", "-q", "predict"]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        source = real_scene(args.size, args.size)
        scenes = []
        for name in ("a", "b", "c"):  # three files (the same pixels: the engine, not the data, is compared)
            scenes.append(folder / f"{name}.tif")
            shutil.copy(source, scenes[-1])
        run_measured(cli + [str(scenes[0]), "-o", str(folder / "warm.tif")])  # compile caches filled once
        one_run, separate = [], []
        for _ in range(args.repeats):
            seconds, _, _ = run_measured(cli + [*map(str, scenes), "-o", str(folder / "many/"), "--overwrite"])
            one_run.append(seconds)
            total = 0.0
            for scene in scenes:
                seconds, _, _ = run_measured(cli + [str(scene), "-o", str(folder / f"single_{scene.name}"),
                                                    "--overwrite"])
                total += seconds
            separate.append(total)
        print(f"three {args.size}² real-pixel scenes, shipped weights, defaults; whole processes, "
              f"median of {args.repeats}")
        print(f"{'run':<36}{'seconds':>9}")
        print(f"{'one predict run, three scenes':<36}{statistics.median(one_run):>9.1f}")
        print(f"{'three predict runs':<36}{statistics.median(separate):>9.1f}")
        print(f"ratio {statistics.median(separate) / statistics.median(one_run):.2f}x; raw: one {one_run}, "
              f"three {separate}")


if __name__ == "__main__":
    main()
