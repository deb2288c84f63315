import datetime as dt
import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from rasterio.transform import Affine
from rasterio.warp import transform_bounds

from lale_geo.cli.main import cli
from lale_geo.errors import LaleGeoError
from lale_geo.maps.stac import machine_name, stac_item, validate_item, write_stac_item

FILE_SCHEMA = "https://stac-extensions.github.io/file/v2.1.0/schema.json"


def run(*args):
    return CliRunner().invoke(cli, list(map(str, args)))


@pytest.fixture(scope="module")
def predicted(tmp_path_factory):
    """One real run of predict with every output and --stac."""
    fixtures = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "rasterio"
    if not fixtures.exists():
        pytest.skip(f"real data not available: {fixtures} (see DESIGN.md §5)")
    out = tmp_path_factory.mktemp("stac")
    result = run("predict", fixtures / "RGB.byte.tif", "-o", out / "lc.tif", "--random-weights", "lale_s1",
                 "--tile-size", "256", "--device", "cpu", "--confidence", out / "conf.tif",
                 "--vector", out / "lc.gpkg", "--stac", out / "item.json",
                 "--stac-datetime", "2013-05-01T19:30:00+04:00")  # STAC wants it in UTC
    assert result.exit_code == 0, result.output
    return out, result


def test_predict_writes_an_item_that_describes_the_map(predicted):
    out, result = predicted
    assert f"wrote {out / 'item.json'}: STAC item valid against STAC core 1.1.0" in result.stdout
    item = json.loads((out / "item.json").read_text())
    assert item["properties"]["datetime"] == "2013-05-01T15:30:00Z"
    assert item["properties"]["lale_geo:untrained"] == "yes"
    sources = [link for link in item["links"] if link["rel"] == "derived_from"]  # what the map was made from
    fixtures = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "rasterio"
    assert [(out / link["href"]).resolve() for link in sources] == [(fixtures / "RGB.byte.tif").resolve()]
    asset = item["assets"]["landcover"]
    assert (out / asset["href"]).resolve() == (out / "lc.tif").resolve() and not Path(asset["href"]).is_absolute()
    with rasterio.open(out / "lc.tif") as src:
        labels, colormap = src.read(1), src.colormap(1)
        assert asset["proj:code"] == f"EPSG:{src.crs.to_epsg()}"
        assert asset["proj:shape"] == [src.height, src.width]
        assert asset["proj:transform"] == pytest.approx(list(src.transform)[:6])
        west, south, east, north = transform_bounds(src.crs, "EPSG:4326", *src.bounds)
    assert item["bbox"] == pytest.approx([west, south, east, north], abs=1e-6)
    assert asset["file:size"] == (out / "lc.tif").stat().st_size
    assert asset["file:checksum"] == "1220" + hashlib.sha256((out / "lc.tif").read_bytes()).hexdigest()
    classes = {c["value"]: c for c in asset["classification:classes"]}
    assert sorted(classes) == [0, 1, 2, 3, 4, 255] and classes[255]["nodata"] is True
    for value in range(5):
        assert classes[value]["count"] == int((labels == value).sum())
        assert re.fullmatch(r"[0-9A-Za-z_-]+", classes[value]["name"])  # the extension's name rule
        assert classes[value]["color_hint"] == "{:02X}{:02X}{:02X}".format(*colormap[value][:3])
    assert sum(classes[v]["percentage"] for v in range(5)) == pytest.approx(100)
    assert item["assets"]["confidence"]["unit"] == "percent"
    assert item["assets"]["polygons"]["type"] == "application/geopackage+sqlite3"
    assert item["assets"]["polygons"]["file:size"] == (out / "lc.gpkg").stat().st_size


def test_the_item_validates_against_the_core_schema_and_a_broken_one_does_not(predicted):
    item = json.loads((predicted[0] / "item.json").read_text())
    validated, _ = validate_item(item)
    assert "https://schemas.stacspec.org/v1.1.0/item-spec/json-schema/item.json" in validated
    item["bbox"] = item["bbox"][:2]
    with pytest.raises(LaleGeoError, match="bbox"):
        validate_item(item)


def test_extension_schemas_from_the_folder_are_used_offline(predicted, tmp_path):
    """A schema file under <folder>/<host>/<path> is used instead of fetching; it really validates."""
    item = json.loads((predicted[0] / "item.json").read_text())
    schema = {"$schema": "http://json-schema.org/draft-07/schema#", "$id": FILE_SCHEMA, "type": "object",
              "properties": {"assets": {"additionalProperties": {
                  "properties": {"file:size": {"type": "integer", "minimum": 0}}}}}}
    path = tmp_path / "stac-extensions.github.io" / "file" / "v2.1.0" / "schema.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(schema))
    validated, unreachable = validate_item(item, schema_folder=tmp_path)
    assert FILE_SCHEMA in validated and FILE_SCHEMA not in unreachable
    item["assets"]["landcover"]["file:size"] = -1
    with pytest.raises(LaleGeoError, match="file:size"):
        validate_item(item, schema_folder=tmp_path)


def test_the_item_validates_against_the_published_extension_schemas(predicted):
    item = json.loads((predicted[0] / "item.json").read_text())
    validated, unreachable = validate_item(item)
    if unreachable:
        pytest.skip(f"extension schemas not reachable from here (no internet): {', '.join(unreachable)}")
    assert set(item["stac_extensions"]) <= set(validated)


def test_predict_refuses_an_existing_item_before_predicting(predicted, tmp_path):
    fixtures = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "rasterio"
    (tmp_path / "item.json").write_text("mine")
    result = run("predict", fixtures / "RGB.byte.tif", "-o", tmp_path / "lc.tif", "--random-weights", "lale_s1",
                 "--stac", tmp_path / "item.json")
    assert result.exit_code == 1 and "--overwrite" in result.stderr
    assert (tmp_path / "item.json").read_text() == "mine" and not (tmp_path / "lc.tif").exists()
    result = run("predict", fixtures / "RGB.byte.tif", "-o", tmp_path / "lc.tif", "--random-weights", "lale_s1",
                 "--stac", tmp_path / "new.json", "--stac-datetime", "last tuesday")
    assert result.exit_code == 2 and "ISO 8601" in result.stderr
    result = run("predict", fixtures / "RGB.byte.tif", "-o", tmp_path / "lc.tif", "--random-weights", "lale_s1",
                 "--stac-datetime", "2024-06-01")
    assert result.exit_code == 2 and "needs --stac" in result.stderr
    result = run("predict", fixtures / "RGB.byte.tif", "-o", tmp_path / "lc.tif", "--random-weights", "lale_s1",
                 "--confidence", tmp_path / "c.tif", "--stac", tmp_path / "c.tif")
    assert result.exit_code == 1 and "c.tif" in result.stderr and "Traceback" not in result.output
    assert not (tmp_path / "lc.tif").exists()


def _class_map(path: Path, crs="EPSG:32633", tags=None) -> Path:
    with rasterio.open(path, "w", driver="GTiff", width=8, height=6, count=1, dtype="uint8", nodata=255,
                       crs=crs, transform=Affine(10, 0, 500000, 0, -10, 4000000)) as dst:
        dst.write(np.array([[0, 1] * 4] * 6, np.uint8), 1)
        dst.update_tags(**(tags or {}))
    return path


def test_class_names_become_machine_names_and_titles(tmp_path):
    tags = {"LALE_GEO_CLASSES": json.dumps(["Tree cover", "Built-up/roads"])}
    item = stac_item(_class_map(tmp_path / "m.tif", tags=tags), tmp_path / "item.json",
                     datetime=dt.datetime(2024, 6, 1, tzinfo=dt.timezone.utc))
    classes = item.assets["landcover"].extra_fields["classification:classes"]
    assert [(c["name"], c["title"], c["count"]) for c in classes[:2]] == [
        ("Tree_cover", "Tree cover", 24), ("Built-up_roads", "Built-up/roads", 24)]
    assert machine_name("a  b/ c") == "a_b_c"
    # the 8 x 6 grid of 10 m pixels, in the map's CRS
    assert item.assets["landcover"].extra_fields["proj:bbox"] == [500000, 3999940, 500080, 4000000]


def test_maps_without_crs_or_class_names_are_refused_with_the_file_named(tmp_path):
    with pytest.raises(LaleGeoError, match="m.tif: no class names"):
        stac_item(_class_map(tmp_path / "m.tif"), tmp_path / "item.json")
    with pytest.raises(LaleGeoError, match="n.tif: no CRS"):
        stac_item(_class_map(tmp_path / "n.tif", crs=None, tags={"LALE_GEO_CLASSES": '["a", "b"]'}),
                  tmp_path / "item.json")
    write_stac_item(_class_map(tmp_path / "o.tif", tags={"LALE_GEO_CLASSES": '["a", "b"]'}), tmp_path / "i.json")
    with pytest.raises(LaleGeoError, match="overwrite=True"):
        write_stac_item(tmp_path / "o.tif", tmp_path / "i.json")
    with pytest.raises(LaleGeoError, match="none.gpkg: file not found"):
        write_stac_item(tmp_path / "o.tif", tmp_path / "j.json", extra_assets={"polygons": tmp_path / "none.gpkg"})
    assert not (tmp_path / "j.json").exists()


def test_stac_command_on_an_existing_map_gives_the_same_item_as_predict(predicted, tmp_path):
    out, _ = predicted
    item = tmp_path / "item.json"
    result = run("stac", out / "lc.tif", "-o", item, "--asset", f"confidence={out / 'conf.tif'}",
                 "--asset", f"polygons={out / 'lc.gpkg'}", "--datetime", "2013-05-01T15:30:00Z")
    assert result.exit_code == 0, result.output
    ours, theirs = json.loads(item.read_text()), json.loads((out / "item.json").read_text())
    theirs["links"] = [link for link in theirs["links"] if link["rel"] != "derived_from"]  # predict knows its input
    for asset in ours["assets"].values():  # written elsewhere: same files, other relative hrefs
        asset["href"] = str((tmp_path / asset["href"]).resolve())
    for asset in theirs["assets"].values():
        asset["href"] = str((out / asset["href"]).resolve())
    assert ours == theirs
    for bad, says in [(["--asset", "conf.tif"], "KEY=PATH"),
                      (["--asset", f"landcover={out / 'conf.tif'}"], "map itself"),
                      (["--asset", "a=x.tif", "--asset", "a=y.tif"], "given twice")]:
        result = run("stac", out / "lc.tif", "-o", tmp_path / "x.json", *bad)
        assert result.exit_code == 2 and says in result.stderr
    result = run("stac", tmp_path / "missing.tif", "-o", tmp_path / "x.json")
    assert result.exit_code == 1 and "missing.tif: file not found" in result.stderr
    assert "Traceback" not in result.output and not (tmp_path / "x.json").exists()


def test_a_broken_schema_in_the_folder_is_named(predicted, tmp_path):
    item = json.loads((predicted[0] / "item.json").read_text())
    path = tmp_path / "stac-extensions.github.io" / "file" / "v2.1.0" / "schema.json"
    path.parent.mkdir(parents=True)
    path.write_text("<html>not found</html>")
    with pytest.raises(LaleGeoError, match=f"{path}: not a readable JSON schema"):
        validate_item(item, schema_folder=tmp_path)
