"""`lale-geo predict --plan` on a huge scene: the tile count must be counted, not built.

    python benchmarks/plan.py [--size 1000000]

The scene is a VRT of ``size`` x ``size`` pixels with no sources (GDAL reads zeros): nothing on disk, so
the figure is the plan's own cost. Wall time and peak RSS are those of the whole `lale-geo` process
(imports included, about 0.7 GB of it), measured with os.wait4.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from _process import run_measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1_000_000)
    args = parser.parse_args()
    bands = "".join(f'<VRTRasterBand dataType="Byte" band="{i}"><ColorInterp>{c}</ColorInterp></VRTRasterBand>'
                    for i, c in enumerate(("Red", "Green", "Blue"), start=1))
    with tempfile.TemporaryDirectory() as tmp:
        vrt = Path(tmp) / "huge.vrt"
        vrt.write_text(f'<VRTDataset rasterXSize="{args.size}" rasterYSize="{args.size}"><SRS>EPSG:32640</SRS>'
                       f"<GeoTransform>500000, 0.5, 0, 2800000, 0, -0.5</GeoTransform>{bands}</VRTDataset>")
        seconds, rss, out = run_measured([sys.executable, "-m", "lale_geo.cli.main", "predict", str(vrt), "-o",
                                          str(Path(tmp) / "map.tif"), "--plan"])
    print(out.strip().splitlines()[0])
    print(f"| scene | plan seconds | peak RSS MB |\n|---|---|---|\n| {args.size:,}^2 | {seconds:.1f} | {rss:.0f} |")


if __name__ == "__main__":
    main()
