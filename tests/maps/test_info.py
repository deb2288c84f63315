import json

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from rasterio.transform import Affine

from lale_geo.cli.main import cli
from lale_geo.maps.info import raster_info
from lale_geo.maps.polygons import vectorize


def test_areas_equal_pixel_counts_times_pixel_area(tmp_path):
    labels = np.zeros((30, 40), np.uint8)
    labels[:10] = 3
    labels[25:, :5] = 255
    path = tmp_path / "m.tif"
    with rasterio.open(path, "w", driver="GTiff", width=40, height=30, count=1, dtype="uint8", crs="EPSG:32633",
                       transform=Affine(2, 0, 0, 0, -3, 0), nodata=255) as dst:
        dst.write(labels, 1)
        dst.write_colormap(1, {0: (1, 2, 3, 255), 3: (9, 8, 7, 255)})
        dst.update_tags(LALE_GEO_CLASSES=json.dumps(["a", "b", "c", "d"]), LALE_GEO_MODEL="lale_s1")
    info = raster_info(path)
    by_id = {c.id: c for c in info.classes}
    assert set(by_id) == {0, 3} and info.nodata_pixels == 25
    assert by_id[3].pixels == 400 and by_id[3].area_m2 == 400 * 6 and by_id[3].name == "d"
    assert by_id[3].area_ha == pytest.approx(400 * 6 / 1e4)
    assert by_id[0].colour == (1, 2, 3) and by_id[0].share == pytest.approx(775 / 1175)
    assert info.provenance["model"] == "lale_s1"
    result = CliRunner().invoke(cli, ["info", str(path), "--json"])
    printed = json.loads(result.output)["classes"]
    assert result.exit_code == 0 and [c["pixels"] for c in printed] == [by_id[0].pixels, 400]
    assert printed[1]["colour"] == [9, 8, 7] and printed[1]["area_ha"] == pytest.approx(0.24)


def test_geographic_areas_agree_with_vectorized_polygons(rasterio_fixtures, tmp_path):
    from tests.conftest import FIXTURES, need

    src = need(FIXTURES / "worldcover" / "ESA_WorldCover_10m_2021_v200_N00E006_Map.tif")
    with rasterio.open(src) as s:
        window = rasterio.windows.Window(7000, 31000, 300, 200)
        profile = dict(s.profile, width=300, height=200, transform=s.window_transform(window))
        data = s.read(1, window=window)
    with rasterio.open(tmp_path / "w.tif", "w", **profile) as dst:
        dst.write(data, 1)
    info = {c.id: c.area_m2 for c in raster_info(tmp_path / "w.tif").classes}
    polygons = vectorize(tmp_path / "w.tif").groupby("class_id").area_m2.sum()
    for value, area in info.items():
        assert polygons[value] == pytest.approx(area, rel=1e-3)
