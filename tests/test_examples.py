"""The examples run as a user would run them, on a small real scene."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from PIL import Image

from lale_geo.maps.stac import validate_item
from lale_geo.weights import list_weights

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
pytestmark = pytest.mark.skipif(not list_weights(), reason="the examples use the shipped default weights")


def run(*args, cwd):
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    result = subprocess.run(list(map(str, args)), cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_cli_walkthrough(rasterio_fixtures, tmp_path):
    out = run("bash", EXAMPLES / "cli_walkthrough.sh", rasterio_fixtures / "RGB.byte.tif", tmp_path / "w", cwd=tmp_path)
    import pyogrio

    with rasterio.open(tmp_path / "w" / "landcover.tif") as m, rasterio.open(tmp_path / "w" / "confidence.tif") as c:
        labels, confidence = m.read(1), c.read(1)
        pixel = abs(m.transform.a * m.transform.e)
    valid = labels != 255
    assert (confidence[~valid] == 255).all() and (confidence[valid] <= 100).all()
    polygons = pyogrio.read_dataframe(tmp_path / "w" / "landcover.gpkg")
    # sieving moves pixels between classes, never in or out of the map
    assert polygons.area_m2.sum() == pytest.approx(valid.sum() * pixel, rel=1e-9)
    assert "hectares" in out and "weights_sha256" in out
    with Image.open(tmp_path / "w" / "preview.png") as png:
        # scene and map side by side (791 x 718 px scaled to 512 x 465 each) plus the legend
        assert png.width > 2 * 512 and png.height >= 465
    item = json.loads((tmp_path / "w" / "item.json").read_text())
    assert {"landcover", "confidence", "polygons"} == set(item["assets"])
    validated, unreachable = validate_item(item)  # raises if invalid; extensions only where fetched
    assert validated[0].endswith("/item-spec/json-schema/item.json")
    assert set(validated[1:]) | set(unreachable) == set(item["stac_extensions"])


def test_xarray_example_matches_the_cli(rasterio_fixtures, tmp_path):
    scene = rasterio_fixtures / "RGB.byte.tif"
    out = run(sys.executable, EXAMPLES / "xarray_segment.py", scene, tmp_path / "x.tif", cwd=tmp_path)
    # the same defaults as the example (engine and precision auto): the same map
    run(sys.executable, "-m", "lale_geo.cli.main", "-q", "predict", scene, "-o", tmp_path / "cli.tif", cwd=tmp_path)
    with rasterio.open(tmp_path / "x.tif") as a, rasterio.open(tmp_path / "cli.tif") as b:
        assert a.transform.almost_equals(b.transform, precision=1e-9) and a.crs == b.crs  # rioxarray rounds
        assert (a.read(1) == b.read(1)).mean() > 0.999
        labels = b.read(1)
    hectares = {line.split()[0]: float(line.split()[1]) for line in out.splitlines()[1:-1]}
    pixel = 300.0379266750948 * 300.041782729805 / 1e4
    assert sum(hectares.values()) == pytest.approx(np.count_nonzero(labels != 255) * pixel, rel=1e-6)


def test_dask_cluster_example(rasterio_fixtures, tmp_path):
    scene = rasterio_fixtures / "RGB.byte.tif"
    out = run(sys.executable, EXAMPLES / "dask_cluster.py", scene, tmp_path / "c.tif", cwd=tmp_path)
    assert "on 2 workers" in out
    with rasterio.open(tmp_path / "c.tif") as c, rasterio.open(scene) as s:
        assert c.transform.almost_equals(s.transform, precision=1e-9) and c.read(1).shape == (s.height, s.width)
