import numpy as np
import pytest
import rasterio

from lale_geo.errors import DatasetError
from lale_geo.training.worldcover import WORLDCOVER_TO_ARAS400K, remap_worldcover


def test_worldcover_remap_to_aras400k_on_the_real_tile(tmp_path):
    from rasterio.windows import Window

    from tests.conftest import FIXTURES, need

    src = need(FIXTURES / "worldcover" / "ESA_WorldCover_10m_2021_v200_N00E006_Map.tif")
    with rasterio.open(src) as s:
        window = Window(6500, 30500, 1200, 1000)
        codes = s.read(1, window=window)
        profile = dict(s.profile, width=1200, height=1000, transform=s.window_transform(window))
    with rasterio.open(tmp_path / "wc.tif", "w", **profile) as dst:
        dst.write(codes, 1)
    counts = remap_worldcover(tmp_path / "wc.tif", tmp_path / "aras.tif")
    with rasterio.open(tmp_path / "aras.tif") as out:
        mapped = out.read(1)
        assert out.transform == profile["transform"] and out.nodata == 255
        assert out.colormap(1)[6][:3] == (0, 0, 255)
    for code, class_id in WORLDCOVER_TO_ARAS400K.items():
        assert (mapped[codes == code] == class_id).all()
    assert (mapped[codes == 0] == 255).all()
    assert counts["Tree cover"] == np.isin(codes, [10, 95]).sum() > 0
    assert counts["Grassland"] == np.isin(codes, [30, 90, 100]).sum() > 0


def test_values_that_are_not_worldcover_codes_are_refused_and_nothing_is_written(tmp_path):
    codes = np.full((20, 30), 10, np.uint8)
    codes[5, 7] = 42
    with rasterio.open(tmp_path / "wc.tif", "w", driver="GTiff", width=30, height=20, count=1, dtype="uint8",
                       crs="EPSG:4326", transform=rasterio.transform.from_origin(6, 1, 1e-4, 1e-4)) as dst:
        dst.write(codes, 1)
    with pytest.raises(DatasetError, match=r"wc.tif: values \[42\] are not WorldCover classes"):
        remap_worldcover(tmp_path / "wc.tif", tmp_path / "aras.tif")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wc.tif"]


def test_the_old_import_path_still_works():
    from lale_geo.training import datasets

    assert datasets.remap_worldcover is remap_worldcover
