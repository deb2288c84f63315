"""The shipped weights with other tools' ONNX conventions, on a real-pixel scene (a 1,024² crop of
`_scenes.real_scene`, given a 0.5 m UTM grid): `lale-geo export` run by GeoDeep, against `lale-geo predict`
(defaults: the INT8 model); and the export run back through `lale-geo predict --weights model.onnx`, against
`predict --precision fp32`. Prints the pixels that agree.

    python benchmarks/onnx_tools.py          # GeoDeep from the bench extra; skipped (said) without it
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import rasterio
from _scenes import real_scene
from rasterio.transform import from_origin

SIZE = 1024


def predict(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "lale_geo.cli.main", "-q", "predict", *args, "--overwrite"], check=True,
                   capture_output=True, text=True)


def labels(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(1)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        with rasterio.open(real_scene(2000, 2000)) as src:
            profile = src.profile | {"width": SIZE, "height": SIZE, "crs": "EPSG:32640",
                                     "transform": from_origin(300000, 2800000, 0.5, 0.5)}
            pixels = src.read(window=rasterio.windows.Window(0, 0, SIZE, SIZE))
        scene = folder / "scene.tif"
        with rasterio.open(scene, "w", **profile) as dst:
            dst.write(pixels)
        model = folder / "lale.onnx"
        subprocess.run([sys.executable, "-m", "lale_geo.cli.main", "-q", "export", "-o", str(model), "--resolution",
                        "50"], check=True, capture_output=True, text=True)
        predict(str(scene), "-o", str(folder / "default.tif"))
        predict(str(scene), "-o", str(folder / "fp32.tif"), "--precision", "fp32")
        predict(str(scene), "-o", str(folder / "onnx.tif"), "--weights", str(model))
        print(f"{SIZE}² real-pixel scene at 0.5 m, shipped weights exported with lale-geo export --resolution 50")
        print(f"{'comparison':<62}{'pixels agreeing':>16}")
        same = labels(folder / "onnx.tif") == labels(folder / "fp32.tif")
        print(f"{'predict --weights lale.onnx  vs  predict --precision fp32':<62}{same.mean():>15.5%}"
              f"  ({int((~same).sum())} of {same.size} differ)")
        if importlib.util.find_spec("geodeep") is None:
            print("GeoDeep: not installed (pip install 'lale_geo[bench]'), not compared")
            return
        import geodeep

        mask = geodeep.run(str(scene), str(model), output_type="raw", max_threads=2)
        agree = (mask == labels(folder / "default.tif")).mean()
        print(f"{'GeoDeep on lale.onnx  vs  predict (defaults, INT8)':<62}{agree:>15.1%}")


if __name__ == "__main__":
    main()
