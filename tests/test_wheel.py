"""The wheel a user installs: built from this tree, installed alone in a fresh virtual environment (the
dependencies come from the test environment, the package only from the wheel), then imported module by
module and run as ``lale-geo predict`` with the shipped default weights. A sub-package, a class table or
a weights file missing from the wheel fails here."""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

ROOT = Path(__file__).resolve().parents[1]


def _run(*args, cwd=None, env=None, timeout=600) -> subprocess.CompletedProcess:
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True, cwd=cwd, env=env,
                            timeout=timeout)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(python, lale-geo) of a fresh venv holding only the wheel; the test environment's site-packages
    give the dependencies (a .pth path line: its own .pth files, the editable install's among them, are
    not run)."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"  # a clean copy: a build/ folder left in the tree would hide a missing package
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, source / name)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in ("lale_geo", "weights"):
        shutil.copytree(ROOT / folder, source / folder, ignore=skip)
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", work / "dist", source)
    [wheel] = (work / "dist").glob("lale_geo-*.whl")
    venv = work / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    _run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--quiet", wheel)
    site = Path(_run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip())
    (site / "test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python, venv / "bin" / "lale-geo", site


def _clean_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return dict(env, PYTHONDONTWRITEBYTECODE="1")


def test_every_module_imports_from_the_installed_wheel(installed, tmp_path):
    python, _, site = installed
    modules = sorted(".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
                     for p in (ROOT / "lale_geo").rglob("*.py"))
    code = ("import importlib, sys\n"
            f"for name in {modules!r}:\n    importlib.import_module(name)\n"
            "import lale_geo\nprint(lale_geo.__file__)")
    # run from an empty folder: the source tree must not be on the path
    printed = _run(python, "-c", code, cwd=tmp_path, env=_clean_env()).stdout.strip()
    assert Path(printed).is_relative_to(site), printed


def test_lale_geo_predict_runs_from_the_installed_wheel_with_the_shipped_weights(installed, tmp_path):
    _, lale_geo, site = installed
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (3, 1, 1), dtype=np.uint8) + np.zeros((3, 200, 240), np.uint8)
    pixels[:, 50:150, 60:200] = rng.integers(0, 256, (3, 100, 140), dtype=np.uint8)
    with rasterio.open(tmp_path / "scene.tif", "w", driver="GTiff", width=240, height=200, count=3, dtype="uint8",
                       crs="EPSG:32640", transform=from_origin(300000, 2800000, 0.5, 0.5)) as dst:
        dst.write(pixels)
    _run(lale_geo, "predict", "scene.tif", "-o", "map.tif", cwd=tmp_path, env=_clean_env())
    with rasterio.open(tmp_path / "map.tif") as out:
        tags, labels = out.tags(), out.read(1)
        assert (out.width, out.height) == (240, 200) and out.crs.to_epsg() == 32640
        assert out.transform == from_origin(300000, 2800000, 0.5, 0.5)
    classes = json.loads(tags["LALE_GEO_CLASSES"])
    assert len(classes) >= 2 and set(np.unique(labels)) <= set(range(len(classes)))  # no nodata in this scene
    assert tags["LALE_GEO_WEIGHTS"] and tags["LALE_GEO_UNTRAINED"] == "no"
    shipped = [p for p in (site / "lale_geo_weights").iterdir() if p.suffix == ".safetensors"]
    assert shipped, "no weights in the wheel"
