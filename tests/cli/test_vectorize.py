import numpy as np
import pyogrio
import rasterio
from click.testing import CliRunner
from rasterio.transform import Affine

from lale_geo.cli.main import cli


def class_raster(path):
    labels = np.zeros((40, 50), np.uint8)
    labels[10:30, 10:40] = 1
    labels[:, 45:] = 255
    with rasterio.open(path, "w", driver="GTiff", width=50, height=40, count=1, dtype="uint8", crs="EPSG:32633",
                       transform=Affine(2, 0, 0, 0, -2, 0), nodata=255) as dst:
        dst.write(labels, 1)
        dst.update_tags(LALE_GEO_CLASSES='["land", "building"]')
    return path


def test_vectorize_writes_layer_and_summary(tmp_path):
    src = class_raster(tmp_path / "lc.tif")
    result = CliRunner().invoke(cli, ["vectorize", str(src), "-o", str(tmp_path / "lc.gpkg"), "--layer", "cover",
                                      "--block-size", "16"])
    assert result.exit_code == 0, result.output
    frame = pyogrio.read_dataframe(tmp_path / "lc.gpkg", layer="cover")
    assert sorted(frame.class_name) == ["building", "land"]
    assert frame.set_index("class_name").area_m2["building"] == 20 * 30 * 4
    assert "building" in result.output and "2 polygons" in result.output


def test_vectorize_refuses_existing_output_and_unknown_format_before_working(tmp_path):
    src = class_raster(tmp_path / "lc.tif")
    (tmp_path / "x.gpkg").write_text("keep")
    result = CliRunner().invoke(cli, ["vectorize", str(src), "-o", str(tmp_path / "x.gpkg")])
    assert result.exit_code == 1 and "--overwrite" in result.output
    assert (tmp_path / "x.gpkg").read_text() == "keep"
    result = CliRunner().invoke(cli, ["vectorize", str(src), "-o", str(tmp_path / "x.shp")])
    assert result.exit_code == 1 and "unknown vector format" in result.output


def test_predict_vector_option(rasterio_fixtures, tmp_path):
    result = CliRunner().invoke(cli, ["predict", str(rasterio_fixtures / "RGB.byte.tif"), "-o", str(tmp_path / "m.tif"),
                                      "--random-weights", "lale_s1", "--vector", str(tmp_path / "m.fgb"),
                                      "--engine", "torch", "--tile-size", "256"])
    assert result.exit_code == 0, result.output
    frame = pyogrio.read_dataframe(tmp_path / "m.fgb")
    with rasterio.open(tmp_path / "m.tif") as m:
        labels = m.read(1)
    with rasterio.open(tmp_path / "m.tif") as m:
        pixel = abs(m.transform.a * m.transform.e)
    assert abs(frame.area_m2.sum() / (np.count_nonzero(labels != 255) * pixel) - 1) < 1e-9
