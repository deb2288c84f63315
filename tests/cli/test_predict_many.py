"""`lale-geo predict a.tif b.tif ... -o OUT/`: one engine for all, the same maps as one scene at a time, a
failed scene reported while the others finish, nothing replaced without --overwrite, --resume per scene."""

from __future__ import annotations

import shutil

import numpy as np
import rasterio
from click.testing import CliRunner

from lale_geo.cli.main import cli
from lale_geo.inference.scenes import predict_scenes
from lale_geo.weights import random_weights

FAST = ["--random-weights", "lale_s1", "--tile-size", "128", "--overlap", "32", "--device", "cpu"]


def run(*args):
    return CliRunner().invoke(cli, list(map(str, args)))


def scenes(rasterio_fixtures, folder):
    folder.mkdir()
    shutil.copy(rasterio_fixtures / "RGB.byte.tif", folder / "a.tif")
    with rasterio.open(rasterio_fixtures / "RGB.byte.tif") as src:  # a second, different scene
        profile = src.profile | {"width": 300, "height": 250}
        with rasterio.open(folder / "b.tif", "w", **profile) as dst:
            dst.write(src.read(window=rasterio.windows.Window(200, 200, 300, 250)))
    (folder / "c.tif").write_bytes(b"not a raster")
    return [folder / n for n in ("a.tif", "b.tif", "c.tif")]


def labels(path):
    with rasterio.open(path) as src:
        return src.read(1)


def test_many_scenes_give_each_its_map_and_a_failed_one_is_reported(rasterio_fixtures, tmp_path):
    a, b, c = scenes(rasterio_fixtures, tmp_path / "in")
    result = run("predict", a, b, c, "-o", tmp_path / "out/", *FAST)
    assert result.exit_code == 1, result.output
    assert "c.tif: not a readable raster" in result.output and "Traceback" not in result.output
    assert "3 scene(s): 2 written, 1 failed (c.tif)" in result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.tif", "b.tif"]
    for scene in (a, b):  # the map of one scene at a time
        single = run("predict", scene, "-o", tmp_path / f"single_{scene.name}", *FAST)
        assert single.exit_code == 0, single.output
        np.testing.assert_array_equal(labels(tmp_path / "out" / scene.name), labels(tmp_path / f"single_{scene.name}"))


def test_a_folder_of_scenes_runs_them_all(rasterio_fixtures, tmp_path):
    scenes(rasterio_fixtures, tmp_path / "in")
    (tmp_path / "in" / "c.tif").unlink()
    (tmp_path / "in" / "notes.txt").write_text("not a scene")
    result = run("predict", tmp_path / "in", "-o", tmp_path / "out", *FAST)
    assert result.exit_code == 0, result.output
    assert "2 scene(s): 2 written" in result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.tif", "b.tif"]
    for name in ("a.tif", "b.tif"):  # each map on its own scene's grid
        with rasterio.open(tmp_path / "in" / name) as scene, rasterio.open(tmp_path / "out" / name) as out:
            assert (out.width, out.height, out.transform, out.crs) == (scene.width, scene.height, scene.transform,
                                                                       scene.crs)


def test_existing_maps_are_kept_unless_overwrite_and_resume_runs_the_rest(rasterio_fixtures, tmp_path):
    a, b, _ = scenes(rasterio_fixtures, tmp_path / "in")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.tif").write_bytes(b"mine")
    refused = run("predict", a, b, "-o", tmp_path / "out", *FAST)
    assert refused.exit_code == 1 and "--overwrite" in refused.output and "--resume" in refused.output
    assert (tmp_path / "out" / "a.tif").read_bytes() == b"mine" and not (tmp_path / "out" / "b.tif").exists()
    resumed = run("predict", a, b, "-o", tmp_path / "out", "--resume", *FAST)
    assert resumed.exit_code == 0, resumed.output
    assert "kept" in resumed.output and "2 scene(s): 1 written, 1 kept from an earlier run" in resumed.output
    assert (tmp_path / "out" / "a.tif").read_bytes() == b"mine" and (tmp_path / "out" / "b.tif").exists()


def test_one_engine_serves_every_scene(rasterio_fixtures, tmp_path, monkeypatch):
    import lale_geo.inference.settings

    made = []
    real = lale_geo.inference.settings.create_engine
    monkeypatch.setattr(lale_geo.inference.settings, "create_engine", lambda *a, **k: made.append(1) or real(*a, **k))
    a, b, _ = scenes(rasterio_fixtures, tmp_path / "in")
    settings = lale_geo.inference.settings.InferenceSettings(device="cpu", tile_size=128, overlap=32)
    results = predict_scenes([a, b], tmp_path / "out", settings, model=random_weights("lale_s1"))
    assert [r.error for r in results] == [None, None] and len(made) == 1


def test_usage_errors(rasterio_fixtures, tmp_path):
    a, b, _ = scenes(rasterio_fixtures, tmp_path / "in")
    result = run("predict", a, b, "-o", tmp_path / "out", "--probabilities", tmp_path / "p.tif", *FAST)
    assert result.exit_code == 2 and "one scene at a time" in result.output
    (tmp_path / "other").mkdir()
    shutil.copy(a, tmp_path / "other" / "a.tif")
    result = run("predict", a, tmp_path / "other" / "a.tif", "-o", tmp_path / "out", *FAST)
    assert result.exit_code == 1 and "has the name of" in result.output
    assert not (tmp_path / "out").exists()
