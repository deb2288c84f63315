import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from lale_geo.io.overviews import mode_2x2, overview_sizes
from lale_geo.io.writers import COG_BLOCKSIZE, RasterWriter

NODATA = 255


def blocky_class_map(height, width, seed=0, holes=True):
    """Patches of 5 classes with ragged edges and a few nodata holes: what a land-cover map looks like."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 5, (height // 7 + 2, width // 7 + 2), dtype=np.uint8)
    labels = np.repeat(np.repeat(coarse, 7, 0), 7, 1)[:height, :width]
    noise = rng.random((height, width)) < 0.15
    labels[noise] = rng.integers(0, 5, noise.sum())
    if holes:
        labels[rng.random((height, width)) < 0.02] = NODATA
        labels[:40, :60] = NODATA
    return labels


def test_mode_takes_the_most_frequent_value_and_ignores_nodata():
    blocks = np.array([[[1, 2, 3, 3, 4, 5, 9, 9, 255, 255, 255, 7, 4, 1, 255, 1],
                        [2, 2, 1, 3, 6, 7, 8, 8, 255, 255, 255, 255, 1, 4, 4, 1]]], np.uint8)
    # 2 twice; 3 three times; all different (first); 9 and 8 twice each (9 reaches 2 first); 255 x4;
    # 7 alone; 4 and 1 twice each, 1 reaches 2 first (GDAL's rule); 1 twice beside nodata
    assert mode_2x2(blocks, NODATA).tolist() == [[[2, 3, 4, 9, 255, 7, 1, 1]]]
    assert mode_2x2(blocks, None)[0, 0, 5] == 255  # without nodata, 255 is a class like any other


def test_nodata_is_not_counted():
    # 1 twice beside nodata; three different valid values: the first valid one
    blocks = np.array([[[4, 1, 255, 3], [1, 255, 2, 1]]], np.uint8)
    assert mode_2x2(blocks, NODATA).tolist() == [[[1, 3]]]


def test_odd_last_rows_and_columns_are_left_out_like_gdal_sizes():
    rows = np.array([[[1, 2, 3], [1, 4, 3], [5, 6, 7]]], np.uint8)
    assert mode_2x2(rows, NODATA).tolist() == [[[1]]]


def test_first_level_equals_gdals_mode_overview(tmp_path):
    # even sizes: for odd ones GDAL stretches its windows by w / ceil(w / 2) instead of repeating the last pixel
    labels = blocky_class_map(1002, 778)
    path = tmp_path / "map.tif"
    with rasterio.open(path, "w", driver="GTiff", width=778, height=1002, count=1, dtype="uint8",
                       nodata=NODATA) as dst:
        dst.write(labels, 1)
        dst.build_overviews([2], rasterio.enums.Resampling.mode)
    with rasterio.open(path, OVERVIEW_LEVEL=0) as overview:
        gdal = overview.read(1)
    ours = mode_2x2(labels[None], NODATA)[0]
    assert ours.shape == gdal.shape == (501, 389)
    np.testing.assert_array_equal(ours, gdal)


def test_levels_halve_until_one_block():
    # as GDAL's COG driver makes them (checked against its output)
    assert overview_sizes(10000, 10000, 512) == [(5000, 5000), (2500, 2500), (1250, 1250), (625, 625), (312, 312)]
    assert overview_sizes(1025, 300, 512) == [(512, 150)]
    assert overview_sizes(5001, 2049, 512) == [(2500, 1024), (1250, 512), (625, 256), (312, 128)]
    assert overview_sizes(512, 512, 512) == []


@pytest.mark.parametrize("band_rows", [97, 192])
def test_published_cog_carries_the_overviews_built_while_writing(tmp_path, band_rows):
    height, width = 1300, 1100
    labels = blocky_class_map(height, width, seed=1)
    profile = dict(driver="GTiff", width=width, height=height, count=1, dtype="uint8", nodata=NODATA,
                   crs="EPSG:32640", transform=from_origin(500000, 2800000, 0.5, 0.5))
    out = tmp_path / "landcover.tif"
    writer = RasterWriter(out, profile, colormap={0: (10, 20, 30, 255)}, tags={"LALE_GEO": "x"})
    for y0 in range(0, height, band_rows):
        writer.write_rows(y0, labels[y0:y0 + band_rows])
    writer.commit()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["landcover.tif"]  # no temporary left behind
    with rasterio.open(out) as cog:
        assert cog.overviews(1) == [2, 4]
        assert cog.profile["blockxsize"] == COG_BLOCKSIZE and cog.nodata == NODATA
        assert cog.colormap(1)[0] == (10, 20, 30, 255) and cog.tags()["LALE_GEO"] == "x"
        assert cog.transform == profile["transform"]
        np.testing.assert_array_equal(cog.read(1), labels)
    level1 = mode_2x2(labels[None], NODATA)[0]
    with rasterio.open(out, OVERVIEW_LEVEL=0) as overview:
        np.testing.assert_array_equal(overview.read(1), level1)
    with rasterio.open(out, OVERVIEW_LEVEL=1) as overview:
        np.testing.assert_array_equal(overview.read(1), mode_2x2(level1[None], NODATA)[0])


def write_map(path, labels, band_rows=64):
    height, width = labels.shape
    profile = dict(driver="GTiff", width=width, height=height, count=1, dtype="uint8", nodata=NODATA,
                   crs="EPSG:32640", transform=from_origin(500000, 2800000, 0.5, 0.5))
    writer = RasterWriter(path, profile)
    for y0 in range(0, height, band_rows):
        writer.write_rows(y0, labels[y0:y0 + band_rows])
    return writer.commit()


@pytest.mark.parametrize(("height", "width"), [(1, 50_000), (50_000, 1), (100, 60_000), (7, 3000), (3, 5000),
                                               (60_000, 100), (2, 2000)])
def test_thin_maps_get_gdal_sized_overviews_that_hold_their_classes(tmp_path, height, width):
    labels = blocky_class_map(height, width, seed=3, holes=False)
    out = write_map(tmp_path / "thin.tif", labels)
    with rasterio.open(out) as cog:
        np.testing.assert_array_equal(cog.read(1), labels)
        factors = cog.overviews(1)
        assert len(factors) == len(overview_sizes(height, width, COG_BLOCKSIZE)) > 0
        for level, size in enumerate(overview_sizes(height, width, COG_BLOCKSIZE)):
            with rasterio.open(out, overview_level=level) as overview:
                data = overview.read(1)
                assert data.shape == size and min(size) >= 1
                assert (data != NODATA).all(), f"level {level + 1} {size} has nodata"
                assert set(np.unique(data)) <= set(np.unique(labels))


def test_a_lone_row_is_halved_along_its_length_only():
    row = np.array([[[1, 2, 3, 3, NODATA, 4, NODATA, NODATA, 5]]], np.uint8)  # (bands, 1, 9)
    from lale_geo.io.overviews import mode_pairs

    assert mode_pairs(row, NODATA, axis=2).tolist() == [[[1, 3, 4, NODATA]]]
    assert mode_pairs(row.transpose(0, 2, 1), NODATA, axis=1)[0, :, 0].tolist() == [1, 3, 4, NODATA]


def test_a_blank_overview_level_is_not_published(tmp_path, monkeypatch):
    from lale_geo.errors import RasterIOError
    from lale_geo.io import overviews

    real = overviews.mode_2x2
    monkeypatch.setattr(overviews, "mode_2x2", lambda rows, nodata: np.full_like(real(rows, nodata), NODATA))
    with pytest.raises(RasterIOError, match="overview level 1 .* holds only nodata where the map holds data"):
        write_map(tmp_path / "map.tif", blocky_class_map(1100, 700, holes=False))
    assert list(tmp_path.iterdir()) == []
