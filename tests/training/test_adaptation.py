"""lale-geo adapt: held-out quarters, polygon labels, never worse than the start, one-line refusals."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.windows
from click.testing import CliRunner
from rasterio.transform import from_origin

from lale_geo.cli.main import cli
from lale_geo.errors import DatasetError
from lale_geo.training.adaptation import (
    Recipe,
    adapt,
    holdout_corner,
    load_labelled,
    rasterise_polygons,
    split_holdout,
    table_for,
)
from lale_geo.training.datasets import Sample
from lale_geo.weights import load_card, resolve_weights

FLAIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "flair-dev"
GRID = from_origin(600000, 6500000, 0.2, 0.2)
COLOURS = {0: (170, 60, 60), 1: (200, 180, 140), 2: (110, 110, 110), 3: (50, 120, 40), 4: (30, 60, 150)}
FAST = Recipe(steps=12, crop=64, batch_size=4, validate_every=4)


def write_area(root: Path, size: int = 96, images: int = 2, seed: int = 0) -> Path:
    """Images whose classes are blobs of typical colours, with label rasters on their grid."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(images):
        cells = rng.integers(0, 5, (size // 16, size // 16))
        labels = np.kron(cells, np.ones((16, 16), np.uint8)).astype(np.uint8)
        pixels = np.stack([np.vectorize(lambda c, b=b: COLOURS[int(c)][b])(labels) for b in range(3)]).astype(float)
        pixels = np.clip(pixels + rng.normal(0, 12, pixels.shape), 0, 255).astype(np.uint8)
        profile = dict(driver="GTiff", width=size, height=size, crs="EPSG:2154", transform=GRID)
        with rasterio.open(root / "images" / f"a{i}.tif", "w", count=3, dtype="uint8", **profile) as dst:
            dst.write(pixels)
        with rasterio.open(root / "masks" / f"a{i}.tif", "w", count=1, dtype="uint8", **profile) as dst:
            dst.write(labels, 1)
    return root


def test_the_held_out_quarter_covers_every_class_of_the_image_best():
    mask = np.full((8, 8), 1, np.uint8)
    mask[2:6, 6:8] = 0  # class 0 across the right-hand quarters
    mask[6:, 4:6] = 2  # class 2 only in the bottom-right quarter
    assert holdout_corner(mask, 3) == (4, 4)  # the only quarter with every class
    mask[:] = 1
    mask[0:2, 6:8] = 0  # class 0 only top-right
    assert holdout_corner(mask, 2) == (0, 4)


def test_the_split_keeps_held_out_pixels_out_of_training():
    image = np.arange(3 * 10 * 12).reshape(3, 10, 12)
    mask = np.zeros((10, 12), np.uint8)
    parts, held = split_holdout(Sample("s", image, mask), 5)
    assert held.shape == (5, 6)
    assert sum(p.image[0].size for p in parts) + held.image[0].size == 10 * 12
    seen = set(np.concatenate([p.image[0].ravel() for p in parts]).tolist())
    assert seen.isdisjoint(held.image[0].ravel().tolist())


def test_adapt_keeps_better_weights_and_records_both_scores(tmp_path):
    data = write_area(tmp_path / "area")
    result = adapt("lale_s1_dubai", data, tmp_path / "w" / "area", recipe=Recipe(steps=40, crop=64, batch_size=4,
                                                                               validate_every=10, lr=1e-3),
                   time_budget_min=5)
    card = json.loads((tmp_path / "w" / "area.json").read_text())
    assert card["metrics"]["start_macro_f1"] == pytest.approx(result.start_f1)
    assert card["metrics"]["adapted_macro_f1"] == pytest.approx(result.adapted_f1)
    assert result.kept == "adapted" and result.adapted_f1 > result.start_f1
    assert card["training"]["kept"] == "adapted"
    assert card["training"]["adapted_from"]["name"] == "lale_s1_dubai"
    assert card["sha256"] != load_card("lale_s1_dubai").sha256
    # the domain guard now checks scenes against the area adapted to: 0.2 m pixels, these images' colours
    assert card["domain"]["pixel_size_m"] == [pytest.approx(0.2), pytest.approx(0.2)]
    assert card["domain"]["images"] == 2 and "adapted to area" in card["domain"]["sensor"]


def test_adapt_never_keeps_weights_worse_than_the_start(tmp_path):
    data = write_area(tmp_path / "area")
    # the whole network at a learning rate that wrecks it: the adapted weights score below the start
    wrecking = Recipe(steps=6, crop=64, batch_size=4, validate_every=3, lr=5.0, freeze=())
    result = adapt("lale_s1_dubai", data, tmp_path / "area", recipe=wrecking, time_budget_min=5)
    assert result.kept == "start" and result.adapted_f1 <= result.start_f1
    tensors, _ = resolve_weights("lale_s1_dubai")
    assert (tmp_path / "area.safetensors").read_bytes() == tensors.read_bytes()
    card = json.loads((tmp_path / "area.json").read_text())
    assert card["metrics"]["macro_f1"] == pytest.approx(result.start_f1) and card["training"]["kept"] == "start"
    assert "kept the starting weights" in result.describe()


def test_polygon_labels_are_burnt_on_the_image_grid(tmp_path):
    gpd = pytest.importorskip("geopandas")
    from shapely.geometry import box

    data = write_area(tmp_path / "area", images=1)
    labels = rasterio.open(data / "masks" / "a0.tif").read(1)
    (data / "masks" / "a0.tif").unlink()
    # one square polygon per 16 px cell, named by class; the grid is 0.2 m per pixel
    x0, y0 = GRID.c, GRID.f
    cells = [(box(x0 + c * 3.2, y0 - (r + 1) * 3.2, x0 + (c + 1) * 3.2, y0 - r * 3.2),
              load_card("lale_s1_dubai").class_names[int(labels[r * 16, c * 16])])
             for r in range(6) for c in range(6) if (r, c) != (0, 0)]
    frame = gpd.GeoDataFrame({"class": [n for _, n in cells]}, geometry=[g for g, _ in cells], crs="EPSG:2154")
    frame.to_file(data / "masks" / "a0.gpkg", engine="pyogrio")
    table = table_for(load_card("lale_s1_dubai"), data)
    burnt = rasterise_polygons(data / "masks" / "a0.gpkg", data / "images" / "a0.tif", table)
    expected = labels.copy()
    expected[:16, :16] = 255  # the cell without a polygon is unlabelled
    np.testing.assert_array_equal(burnt, expected)
    assert load_labelled(data, table)[0].mask.tolist() == expected.tolist()


def test_unknown_polygon_classes_are_refused_in_one_line(tmp_path):
    gpd = pytest.importorskip("geopandas")
    from shapely.geometry import box

    data = write_area(tmp_path / "area", images=1)
    (data / "masks" / "a0.tif").unlink()
    gpd.GeoDataFrame({"class": ["Glacier"]}, geometry=[box(GRID.c, GRID.f - 5, GRID.c + 5, GRID.f)],
                     crs="EPSG:2154").to_file(data / "masks" / "a0.geojson", engine="pyogrio")
    with pytest.raises(DatasetError, match="'Glacier' is not one of the weights' classes"):
        load_labelled(data, table_for(load_card("lale_s1_dubai"), data))


def test_cli_refuses_other_classes_and_missing_bands_in_one_line(tmp_path):
    data = write_area(tmp_path / "area", images=1)
    (data / "classes.json").write_text(json.dumps({"classes": [{"id": 0, "name": "Forest", "value": 0},
                                                               {"id": 1, "name": "Field", "value": 1}]}))
    result = CliRunner().invoke(cli, ["adapt", "--data", str(data), "-o", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and "are not the weights'" in result.output
    (data / "classes.json").unlink()
    with rasterio.open(data / "images" / "a0.tif") as src:
        one_band = src.read(1)
        profile = dict(src.profile, count=1)
    with rasterio.open(data / "images" / "a0.tif", "w", **profile) as dst:
        dst.write(one_band, 1)
    result = CliRunner().invoke(cli, ["adapt", "--data", str(data), "-o", str(tmp_path / "out")])
    assert result.exit_code == 1 and result.output.count("\n") == 1 and "1 band(s)" in result.output
    assert not (tmp_path / "out.json").exists()


def test_cli_adapt_writes_weights_and_says_what_it_kept(tmp_path):
    data = write_area(tmp_path / "area")
    result = CliRunner().invoke(cli, ["adapt", "--data", str(data), "-o", str(tmp_path / "out"), "--steps", "4",
                                      "--threads", "2"])
    assert result.exit_code == 0, result.output
    assert "held-out macro F1" in result.output and "(start) ->" in result.output
    card = json.loads((tmp_path / "out.json").read_text())
    assert card["training"]["recipe"]["steps"] == 4
    again = CliRunner().invoke(cli, ["adapt", "--data", str(data), "-o", str(tmp_path / "out"), "--steps", "4"])
    assert again.exit_code == 1 and "pass --overwrite" in again.output


def flair_crops(root: Path, size: int = 160) -> Path:
    """A tiny real dataset: the top-left ``size`` px of each flair-dev image and its labels."""
    if not FLAIR.is_dir():
        pytest.skip(f"{FLAIR} not found (the shared data folder is not beside this clone)")
    for folder in ("images", "masks"):
        (root / folder).mkdir(parents=True)
        for path in sorted((FLAIR / "train" / folder).glob("*.tif")):
            with rasterio.open(path) as src:
                window = rasterio.windows.Window(0, 0, size, size)
                profile = dict(src.profile, width=size, height=size, transform=src.window_transform(window))
                data = src.read(window=window)
            with rasterio.open(root / folder / path.name, "w", **profile) as dst:
                dst.write(data)
    shutil.copy(FLAIR / "classes.json", root / "classes.json")
    return root


def test_cli_adapt_on_tiny_real_images_keeps_better_weights(tmp_path):
    data = flair_crops(tmp_path / "flair")
    result = CliRunner().invoke(cli, ["adapt", "--data", str(data), "-o", str(tmp_path / "w"), "--steps", "30",
                                      "--threads", "2"])
    assert result.exit_code == 0, result.output
    card = json.loads((tmp_path / "w.json").read_text())
    metrics = card["metrics"]
    assert card["training"]["kept"] == "adapted" and metrics["adapted_macro_f1"] > metrics["start_macro_f1"]
    assert f"{metrics['start_macro_f1']:.3f} (start) -> {metrics['adapted_macro_f1']:.3f}" in result.output


@pytest.mark.slow
def test_adapt_on_flair_dev_beats_the_start(tmp_path):
    if not FLAIR.is_dir():
        pytest.skip(f"{FLAIR} not found (the shared data folder is not beside this clone)")
    data = tmp_path / "flair"
    shutil.copytree(FLAIR, data)
    result = adapt("lale_s1_dubai", data, tmp_path / "flair_w", recipe=Recipe(steps=60), time_budget_min=5)
    assert result.kept == "adapted" and result.adapted_f1 > result.start_f1 + 0.1
