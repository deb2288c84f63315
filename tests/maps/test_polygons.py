import numpy as np
import pyogrio
import pytest
import rasterio
import shapely
from pyproj import Geod
from rasterio.transform import Affine
from rasterio.windows import Window

from lale_geo.errors import InvalidInputError, OutputExistsError
from lale_geo.maps.polygons import vectorize
from lale_geo.maps.vector_files import write_layer

WORLDCOVER = "worldcover/ESA_WorldCover_10m_2021_v200_N00E006_Map.tif"


UTM_10M = Affine(10, 0, 400000, 0, -10, 5000000)


def write(path, labels, crs="EPSG:32633", transform=UTM_10M, nodata=255, tags=None):
    with rasterio.open(path, "w", driver="GTiff", width=labels.shape[1], height=labels.shape[0], count=1,
                       dtype=labels.dtype, crs=crs, transform=transform, nodata=nodata) as dst:
        dst.write(labels, 1)
        if tags:
            dst.update_tags(**tags)
    return path


@pytest.fixture
def worldcover_window(tmp_path):
    """A real 1000 x 1200 window of the WorldCover tile (São Tomé: land, water, nodata), EPSG:4326."""
    from tests.conftest import FIXTURES, need

    src_path = need(FIXTURES / WORLDCOVER)
    with rasterio.open(src_path) as src:
        window = Window(6500, 30500, 1200, 1000)
        labels = src.read(1, window=window)
        transform, tags = src.window_transform(window), {"legend": src.tags()["legend"]}
    return write(tmp_path / "wc.tif", labels, crs="EPSG:4326", transform=transform, nodata=0, tags=tags), labels


def patch_signature(frame):
    return sorted(zip(frame.class_id, np.round(frame.area_m2, 6)))


def test_areas_equal_pixel_counts_in_a_projected_crs(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.kron(rng.integers(0, 4, (20, 30)), np.ones((5, 5), int)).astype(np.uint8)
    labels[:7, :9] = 255
    path = write(tmp_path / "l.tif", labels)
    frame = vectorize(path, block_size=32)
    for value in range(4):
        expected = (labels == value).sum() * 100.0
        got = frame.loc[frame.class_id == value, "area_m2"].sum()
        assert abs(got / expected - 1) < 1e-9
    assert 255 not in set(frame.class_id)  # nodata never becomes polygons
    assert frame.geometry.is_valid.all() and shapely.coverage_is_valid(frame.geometry.to_numpy())


def test_block_size_does_not_change_the_polygons(worldcover_window):
    path, _ = worldcover_window
    small, whole = vectorize(path, block_size=64), vectorize(path, block_size=100_000)
    assert len(small) == len(whole) > 100
    assert patch_signature(small) == patch_signature(whole)
    assert shapely.coverage_is_valid(small.geometry.to_numpy())


def test_a_patch_across_four_blocks_is_one_polygon_with_its_hole(tmp_path):
    labels = np.zeros((64, 64), np.uint8)
    labels[8:56, 8:56] = 1
    labels[28:36, 28:36] = 2  # hole in the middle, on the corner of four 32 px blocks
    frame = vectorize(write(tmp_path / "p.tif", labels), block_size=32)
    ring = frame[frame.class_id == 1]
    assert len(ring) == 1
    polygon = ring.geometry.iloc[0]
    assert polygon.geom_type == "Polygon" and len(polygon.interiors) == 1
    assert ring.area_m2.iloc[0] == pytest.approx((48 * 48 - 64) * 100)
    assert len(frame[frame.class_id == 0]) == 1  # the outer frame is one polygon with a hole too


def test_geographic_areas_agree_with_geodesic_pixel_areas(worldcover_window):
    path, labels = worldcover_window
    frame = vectorize(path)
    with rasterio.open(path) as src:
        t = src.transform
    geod = Geod(ellps="WGS84")
    # independent reference: geodesic area of one pixel per row, times the class's pixels in that row
    rows = np.arange(labels.shape[0])
    tops = t.f + rows * t.e
    cell = np.array([abs(geod.polygon_area_perimeter([t.c, t.c + t.a, t.c + t.a, t.c],
                                                    [y, y, y + t.e, y + t.e])[0]) for y in tops])
    for value in (10, 30, 80):
        expected = ((labels == value) * cell[:, None]).sum()
        got = frame.loc[frame.class_id == value, "area_m2"].sum()
        assert abs(got / expected - 1) < 1e-3
    names = dict(zip(frame.class_id, frame.class_name))
    assert names[10] == "Tree cover" and names[80] == "Permanent water bodies"


def test_sieve_and_simplify_keep_a_valid_coverage(worldcover_window):
    path, _ = worldcover_window
    plain = vectorize(path, block_size=256)
    sieved = vectorize(path, block_size=256, min_pixels=20, simplify=0.00005)
    assert len(sieved) < len(plain)
    assert sieved.geometry.is_valid.all() and shapely.coverage_is_valid(sieved.geometry.to_numpy())
    assert shapely.get_num_coordinates(sieved.geometry.to_numpy()).sum() < \
        shapely.get_num_coordinates(plain.geometry.to_numpy()).sum()
    # sieving moves area between classes but keeps the total (nodata stays out)
    assert sieved.area_m2.sum() == pytest.approx(plain.area_m2.sum(), rel=1e-3)


def test_sieve_removes_small_patches_everywhere(tmp_path):
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, (90, 90)).astype(np.uint8)
    frame = vectorize(write(tmp_path / "n.tif", labels, nodata=None), block_size=40, min_pixels=6)
    assert (frame.area_m2 >= 6 * 100 - 1e-6).all()
    assert frame.area_m2.sum() == pytest.approx(90 * 90 * 100)


def test_classes_only_and_connectivity(tmp_path):
    labels = np.array([[1, 0], [0, 1]], np.uint8).repeat(10, 0).repeat(10, 1)
    path = write(tmp_path / "d.tif", labels, nodata=None)
    assert len(vectorize(path, classes_only=[1])) == 2
    eight = vectorize(path, classes_only=[1], connectivity=8)
    assert len(eight) == 1 and eight.area_m2.iloc[0] == pytest.approx(200 * 100)


@pytest.mark.parametrize("suffix", [".gpkg", ".parquet", ".fgb", ".geojson"])
def test_every_format_reads_back_with_crs_and_schema(tmp_path, suffix):
    labels = np.array([[1, 1, 2], [1, 2, 2]], np.uint8)
    frame = vectorize(write(tmp_path / "s.tif", labels, tags={"LALE_GEO_CLASSES": '["a", "b", "c"]'}))
    out = write_layer(frame, tmp_path / f"out{suffix}")
    back = (__import__("geopandas").read_parquet(out) if suffix == ".parquet"
            else pyogrio.read_dataframe(out))
    assert back.crs.to_epsg() == 32633
    assert list(back.columns[:4]) == ["class_id", "class_name", "area_m2", "source"]
    assert sorted(back.class_name) == ["b", "c"] and set(back.source) == {"s.tif"}
    with pytest.raises(OutputExistsError):
        write_layer(frame, out)


def test_bad_inputs(tmp_path, rasterio_fixtures):
    with pytest.raises(InvalidInputError, match="one band"):
        vectorize(rasterio_fixtures / "RGB.byte.tif")
    with pytest.raises(InvalidInputError, match="integer class ids"):
        vectorize(rasterio_fixtures / "float_nan.tif")
    with pytest.warns(UserWarning, match="empty"):
        frame = vectorize(write(tmp_path / "e2.tif", np.full((5, 5), 255, np.uint8)))
    assert frame.empty
    out = write_layer(frame, tmp_path / "empty.gpkg")
    assert len(pyogrio.read_dataframe(out)) == 0
    with pytest.raises(InvalidInputError, match="unknown vector format"):
        write_layer(frame, tmp_path / "x.shp")


@pytest.mark.parametrize("suffix, connectivity", [(".gpkg", 4), (".fgb", 4), (".geojson", 4), (".gpkg", 8)])
def test_streamed_layers_equal_the_in_memory_layer(worldcover_window, tmp_path, suffix, connectivity):
    from lale_geo.maps.vector_files import vectorize_to_file

    path, _ = worldcover_window
    out = tmp_path / f"s{suffix}"
    summary = vectorize_to_file(path, out, chunk_size=50, block_size=256, connectivity=connectivity)
    streamed = pyogrio.read_dataframe(out)
    whole = vectorize(path, block_size=256, connectivity=connectivity)
    assert summary.polygons == len(streamed) == len(whole)
    assert patch_signature(streamed) == patch_signature(whole)
    assert streamed.crs == whole.crs and set(streamed.class_name) == set(whole.class_name)
    assert summary.area_per_class_m2["Tree cover"] == pytest.approx(whole[whole.class_id == 10].area_m2.sum())
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name, "wc.tif"]
    if connectivity == 8:  # corner-touching patches come out whole, as MultiPolygons
        assert set(streamed.geom_type) == set(whole.geom_type)


@pytest.mark.parametrize("suffix", [".gpkg", ".fgb", ".geojson"])
def test_streamed_empty_layer(tmp_path, suffix):
    from lale_geo.maps.vector_files import vectorize_to_file

    src = write(tmp_path / "e.tif", np.full((5, 5), 255, np.uint8))
    with pytest.warns(UserWarning, match="empty"):
        summary = vectorize_to_file(src, tmp_path / f"e{suffix}")
    layer = pyogrio.read_dataframe(tmp_path / f"e{suffix}")
    assert summary.polygons == 0 and len(layer) == 0
    if suffix != ".geojson":  # an empty GeoJSON has no features to carry field names
        assert {"class_id", "class_name", "area_m2", "source"} <= set(layer.columns)
