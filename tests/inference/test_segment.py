import dask
import numpy as np
import pytest
import rasterio
import rioxarray
import xarray as xr

from lale_geo.errors import InvalidInputError
from lale_geo.inference.predict import predict
from lale_geo.inference.segment import segment
from lale_geo.io.outputs import OUTPUT_NODATA
from tests.helpers import LocalModel, card_for

PAIR = (LocalModel(4, radius=1), card_for(4, 128, 32))


def fail_on_compute(*args, **kwargs):
    raise AssertionError("dask computed while building the graph")


@pytest.fixture
def rgb(rasterio_fixtures):
    return rasterio_fixtures / "RGB.byte.tif"


def test_dask_input_stays_lazy_and_equals_the_cli_map(rgb, tmp_path):
    da = rioxarray.open_rasterio(rgb, chunks={"band": -1, "y": 256, "x": 256})
    with dask.config.set(scheduler=fail_on_compute):
        out = segment(da, model=PAIR, device="cpu", block_size=300)
    assert isinstance(out.data, dask.array.Array)
    predict(rgb, tmp_path / "cli.tif", model=PAIR, device="cpu")
    with rasterio.open(tmp_path / "cli.tif") as cli:
        expected = cli.read(1)
    np.testing.assert_array_equal(out.values, expected)


def test_numpy_input_computes_and_keeps_georeferencing(rgb):
    da = rioxarray.open_rasterio(rgb).load()
    out = segment(da, model=PAIR, device="cpu")
    assert isinstance(out.data, np.ndarray) and out.dtype == np.uint8
    assert out.rio.crs == da.rio.crs and out.rio.transform() == da.rio.transform()
    np.testing.assert_array_equal(out.y, da.y)
    np.testing.assert_array_equal(out.x, da.x)
    assert out.attrs["class_names"] == ["c0", "c1", "c2", "c3"] and out.attrs["_FillValue"] == OUTPUT_NODATA
    with rasterio.open(rgb) as src:
        np.testing.assert_array_equal(out.values == OUTPUT_NODATA, src.dataset_mask() == 0)


def test_probabilities_sum_to_one_and_match_the_classes(rgb):
    da = rioxarray.open_rasterio(rgb, chunks=True)
    probs = segment(da, model=PAIR, device="cpu", probabilities=True, block_size=400)
    classes = segment(da, model=PAIR, device="cpu", block_size=400)
    p, c = probs.values, classes.values
    assert probs.dims == ("class", "y", "x") and list(probs["class"].values) == ["c0", "c1", "c2", "c3"]
    valid = c != OUTPUT_NODATA
    np.testing.assert_allclose(p[:, valid].sum(0), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(p[:, valid].argmax(0), c[valid])
    assert np.isnan(p[:, ~valid]).all()


def test_block_size_does_not_change_the_result(rgb):
    da = rioxarray.open_rasterio(rgb, chunks=True)
    a = segment(da, model=PAIR, device="cpu", block_size=128).values
    b = segment(da, model=PAIR, device="cpu", block_size=1000).values
    np.testing.assert_array_equal(a, b)


def test_wrong_band_count_is_a_clear_error():
    da = xr.DataArray(np.zeros((2, 10, 10), np.uint8), dims=("band", "y", "x"))
    with pytest.raises(InvalidInputError, match="weights need 3"):
        segment(da, model=PAIR)


@pytest.mark.slow
def test_distributed_cluster_gives_identical_results(rgb):
    distributed = pytest.importorskip("distributed")
    da = rioxarray.open_rasterio(rgb, chunks=True)
    local = segment(da, model=PAIR, device="cpu", block_size=300).values
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster):
        remote = segment(da, model=PAIR, device="cpu", block_size=300).compute()
    np.testing.assert_array_equal(remote.values, local)


def test_a_segment_map_written_with_rio_to_raster_reads_like_a_predict_map(rgb, tmp_path):
    """segment() attrs carry predict's tags: info, vectorize, stac and preview see its classes and colours."""
    import geopandas

    from lale_geo.maps.info import raster_info
    from lale_geo.maps.stac import CLASSES_ASSET, stac_item
    from lale_geo.maps.vector_files import vectorize_to_file

    da = rioxarray.open_rasterio(rgb, chunks={"band": -1, "y": 256, "x": 256})
    card = PAIR[1]
    segment(da, model=PAIR, device="cpu").rio.to_raster(tmp_path / "seg.tif")
    predict(rgb, tmp_path / "cli.tif", model=PAIR, device="cpu")
    with rasterio.open(tmp_path / "seg.tif") as seg, rasterio.open(tmp_path / "cli.tif") as cli:
        seg_tags, cli_tags = seg.tags(), cli.tags()
        np.testing.assert_array_equal(seg.read(1), cli.read(1))
    same = ("LALE_GEO_CLASSES", "LALE_GEO_COLOURS", "LALE_GEO_WEIGHTS_SHA256", "LALE_GEO_TILE_SIZE", "LALE_GEO_OVERLAP")
    assert {k: seg_tags[k] for k in same} == {k: cli_tags[k] for k in same}
    info = raster_info(tmp_path / "seg.tif")
    assert {c.name for c in info.classes} <= set(card.class_names)
    vectorize_to_file(tmp_path / "seg.tif", tmp_path / "seg.gpkg")
    assert set(geopandas.read_file(tmp_path / "seg.gpkg")["class_name"]) <= set(card.class_names)
    item = stac_item(tmp_path / "seg.tif", tmp_path / "item.json")
    classes = item.assets[CLASSES_ASSET].extra_fields["classification:classes"]
    hints = {c["value"]: c.get("color_hint") for c in classes if not c.get("nodata")}
    assert hints == {c.id: "{:02X}{:02X}{:02X}".format(*c.colour) for c in card.classes}


@pytest.fixture
def internally_masked(rgb, tmp_path):
    """RGB.byte with an internal GDAL mask over pixels that hold ordinary values (not nodata)."""
    with rasterio.open(rgb) as src:
        window = rasterio.windows.Window(200, 150, 300, 260)
        pixels = src.read(window=window)
        profile = dict(driver="GTiff", width=300, height=260, count=3, dtype="uint8", crs=src.crs,
                       transform=src.window_transform(window), tiled=True, blockxsize=128, blockysize=128)
    pixels[pixels == 0] = 1  # no nodata value at all: only the mask says what is invalid
    mask = np.full((260, 300), 255, np.uint8)
    mask[40:90, 60:200] = 0
    path = tmp_path / "masked.tif"
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(path, "w", **profile) as dst:
        dst.write(pixels)
        dst.write_mask(mask)
    return path, mask > 0


def test_segment_honours_the_files_dataset_mask_like_predict(internally_masked, tmp_path):
    path, valid = internally_masked
    predict(path, tmp_path / "cli.tif", model=PAIR, device="cpu")
    with rasterio.open(tmp_path / "cli.tif") as cli:
        expected = cli.read(1)
    np.testing.assert_array_equal(expected == OUTPUT_NODATA, ~valid)
    lazy = segment(rioxarray.open_rasterio(path, chunks=True), model=PAIR, device="cpu", block_size=128)
    eager = segment(rioxarray.open_rasterio(path).load(), model=PAIR, device="cpu")
    np.testing.assert_array_equal(lazy.values, expected)
    np.testing.assert_array_equal(eager.values, expected)
    window = segment(rioxarray.open_rasterio(path).isel(y=slice(30, 200), x=slice(50, 250)), model=PAIR, device="cpu")
    np.testing.assert_array_equal(window.values == OUTPUT_NODATA, ~valid[30:200, 50:250])


def test_segment_warns_when_the_files_mask_cannot_be_placed_on_the_array(internally_masked):
    path, _ = internally_masked
    halved = rioxarray.open_rasterio(path).isel(y=slice(None, None, 2), x=slice(None, None, 2))
    with pytest.warns(UserWarning, match="masked.tif has a dataset mask .* does not line up with the array"):
        segment(halved, model=PAIR, device="cpu")
    given = np.ones(halved.shape[1:], bool)
    given[:5] = False
    out = segment(halved, model=PAIR, device="cpu", mask=given)  # the caller's own mask: no warning needed
    assert (out.values[:5] == OUTPUT_NODATA).all() and (out.values[5:] != OUTPUT_NODATA).all()
    with rasterio.open(path) as src:  # the map sits on the halved grid, not on the file's
        assert out.rio.transform().a == pytest.approx(2 * src.transform.a)
        assert out.rio.transform().e == pytest.approx(2 * src.transform.e)


def test_a_path_is_read_lazily_through_the_checked_reader_and_equals_the_cli_map(rasterio_fixtures, tmp_path):
    src = rasterio_fixtures / "RGBA.byte.tif"  # predict's band rule (alpha skipped) and its mask apply
    predict(src, tmp_path / "cli.tif", model=PAIR, device="cpu")
    with dask.config.set(scheduler=fail_on_compute):
        out = segment(str(src), model=PAIR, device="cpu", block_size=300)
    assert isinstance(out.data, dask.array.Array) and out.attrs["LALE_GEO_BANDS"] == "1,2,3"
    with rasterio.open(tmp_path / "cli.tif") as cli:
        np.testing.assert_array_equal(out.values, cli.read(1))
        assert out.rio.transform() == cli.transform and out.rio.crs == cli.crs


def test_a_damaged_block_of_a_path_is_a_one_line_error_naming_the_window(tmp_path):
    from lale_geo.errors import RasterIOError
    from tests.faults.common import write_scene
    from tests.faults.tiff import damage_tile

    bad = write_scene(tmp_path / "bad.tif", 128, tiled=True, blockxsize=64, blockysize=64, compress="LZW")
    damage_tile(bad, 3, 0.1)
    out = segment(bad, model=PAIR, device="cpu")
    with pytest.raises(RasterIOError, match=r"bad.tif: read failed at row 0, col 0 \(128x128 px\)"):
        out.compute()


def test_a_file_as_rioxarray_opened_it_is_read_through_the_checked_reader(tmp_path):
    """A damaged JPEG block: GDAL only warns, and rioxarray's read returned the damaged pixels (a silently
    different map). The same array, untouched since it was opened, is read through the checked reader."""
    from lale_geo.errors import RasterIOError
    from lale_geo.inference.segment import _with_checked_reads
    from tests.faults.test_read_path import break_jpeg_tile, jpeg_scene

    good = jpeg_scene(tmp_path / "good.tif")
    bad = jpeg_scene(tmp_path / "bad.tif")
    break_jpeg_tile(bad, 5)
    reference = segment(rioxarray.open_rasterio(good, chunks=True), model=PAIR, device="cpu").values
    np.testing.assert_array_equal(segment(str(good), model=PAIR, device="cpu").values, reference)
    with pytest.raises(RasterIOError) as error:
        segment(rioxarray.open_rasterio(bad, chunks=True), model=PAIR, device="cpu").compute()
    assert str(error.value).startswith(f"{bad}: read failed at row ") and "\n" not in str(error.value)
    # masked (floats, NaN) or computed arrays are not the file's pixels: they are read as given
    arrays = (rioxarray.open_rasterio(bad, chunks=True, masked=True), rioxarray.open_rasterio(bad, chunks=True) + 0)
    for changed in arrays:
        assert _with_checked_reads(changed) is changed


def test_selections_of_a_file_as_rioxarray_opened_it_are_read_through_the_checked_reader(tmp_path):
    """isel, sel, clip_box, isel_window and picked bands of an opened file are still one window of its pixels:
    they read through the checked reader too, the right pixels, and a damaged block inside them is one line."""
    from lale_geo.errors import RasterIOError
    from lale_geo.inference.segment import _with_checked_reads
    from tests.faults.test_read_path import break_jpeg_tile, jpeg_scene

    good = jpeg_scene(tmp_path / "good.tif")
    bad = jpeg_scene(tmp_path / "bad.tif")
    break_jpeg_tile(bad, 5)  # block row 1, column 1: rows and columns 64-127

    def selections(path):
        da = rioxarray.open_rasterio(path, chunks=True)
        x, y = da.coords["x"].values, da.coords["y"].values
        return {"isel": da.isel(band=[2, 0, 1], y=slice(40, 200), x=slice(24, 180)),
                "sel": da.sel(x=slice(x[30], x[150]), y=slice(y[10], y[220])),
                "clip_box": da.rio.clip_box(x[20], y[230], x[200], y[50]),
                "isel_window": da.rio.isel_window(rasterio.windows.Window(60, 50, 100, 90))}

    for name, selected in selections(good).items():
        checked = _with_checked_reads(selected)
        assert not any("open_rasterio" in layer for layer in checked.data.dask.layers), name
        np.testing.assert_array_equal(checked.values, selected.values, err_msg=name)  # the same pixels
    for name, selected in selections(bad).items():
        with pytest.raises(RasterIOError) as error:
            segment(selected, model=PAIR, device="cpu").compute()
        assert str(error.value).startswith(f"{bad}: read failed at row ") and "\n" not in str(error.value), name
    below = rioxarray.open_rasterio(bad, chunks=True).isel(y=slice(150, 256))  # clear of the damaged block
    intact = rioxarray.open_rasterio(good, chunks=True).isel(y=slice(150, 256))
    np.testing.assert_array_equal(segment(below, model=PAIR, device="cpu").values,
                                  segment(intact, model=PAIR, device="cpu").values)
    # Read as given: not one window of the file's pixels (subsampled, columns picked), selected in two steps,
    # or relabelled so that the coordinates name other pixels than the array holds (the graph is unchanged by
    # assign_coords: reading what the coordinates say would read the wrong bands or columns)
    da = rioxarray.open_rasterio(good, chunks=True)
    others = {"subsampled": da.isel(x=slice(None, None, 2)), "columns picked": da.isel(x=[3, 4, 9, 10]),
              "two steps": da.isel(x=slice(10, 40)).isel(y=slice(5, 20)),
              "bands relabelled": da.assign_coords(band=[3, 2, 1]),
              "renumbered after a pick": da.isel(band=[2, 0, 1]).assign_coords(band=[1, 2, 3]),
              "columns relabelled": da.isel(x=slice(10, 40)).assign_coords(x=da.x.values[:30]),
              "no coordinates": da.isel(x=slice(10, 40), y=slice(5, 20)).drop_vars(["x", "y"])}
    for name, other in others.items():
        assert _with_checked_reads(other) is other, name
    with pytest.raises(InvalidInputError, match="the array is empty"):  # not rioxarray's NoDataInBounds
        segment(da.isel(x=slice(0, 0)), model=PAIR, device="cpu")


def test_arrays_rioxarray_masked_or_scaled_or_of_another_file_are_read_as_given(tmp_path):
    """masked=True and mask_and_scale=True change the values inside rioxarray's open (NaN for nodata or under
    an internal mask, per-band scales and offsets): a raw read would drop that. An array holding another
    file's pixels than its ``source`` names is not that file's either. All are left to rioxarray."""
    from lale_geo.inference.segment import _with_checked_reads

    def write(name, **extra):
        path = tmp_path / name
        profile = dict(driver="GTiff", width=40, height=30, count=3, dtype="float32", crs="EPSG:32633",
                       transform=rasterio.transform.from_origin(500000, 4000000, 0.5, 0.5))
        with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(path, "w", **dict(profile, **extra)) as dst:
            dst.write(np.random.default_rng(len(name)).random((3, 30, 40), np.float32) + 1)
            if "nodata" in extra:
                dst.write(np.zeros((3, 1, 5), np.float32), window=rasterio.windows.Window(0, 0, 5, 1))
            else:
                mask = np.full((30, 40), 255, np.uint8)
                mask[0, :5] = 0
                dst.write_mask(mask)
                dst.scales, dst.offsets = (1.0, 2.0, 3.0), (0.0, 5.0, 0.0)
        return path

    nodata, internal = write("nodata.tif", nodata=0.0), write("internal_mask.tif")
    for path, options in ((nodata, {"masked": True}), (nodata, {"mask_and_scale": True}),
                          (internal, {"masked": True}), (internal, {"mask_and_scale": True})):
        da = rioxarray.open_rasterio(path, chunks=True, **options)
        for array in (da, da.isel(x=slice(0, 20)), da.isel(band=[1])):
            assert _with_checked_reads(array) is array, (path.name, options)
        assert np.isnan(da.values[:, 0, :5]).all()  # what a raw read would have lost
    scaled = rioxarray.open_rasterio(internal, chunks=True, mask_and_scale=True)
    with rasterio.open(internal) as src:
        assert not np.allclose(scaled.values[1, 1:], src.read(2)[1:])  # the band's scale and offset applied
    first = rioxarray.open_rasterio(nodata, chunks=True)
    other = first.copy(data=rioxarray.open_rasterio(internal, chunks=True).data)  # source says nodata.tif
    assert _with_checked_reads(other) is other
    assert _with_checked_reads(first) is not first  # the raw open itself is read through the checked reader


def test_a_uint16_path_is_scaled_as_predict_scales_it_from_its_masked_sample(tmp_path):
    """predict's bounded, masked sample decides the percentiles; masked pixels with extreme values must not."""
    rng = np.random.default_rng(4)
    pixels = rng.integers(300, 3000, (3, 300, 320)).astype(np.uint16)
    mask = np.full((300, 320), 255, np.uint8)
    mask[:120] = 0
    pixels[:, :120] = 60000  # under the mask: counted, they would move the 98th percentile
    path = tmp_path / "u16.tif"
    profile = dict(driver="GTiff", width=320, height=300, count=3, dtype="uint16", crs="EPSG:32633",
                   transform=rasterio.transform.from_origin(500000, 4000000, 0.5, 0.5), tiled=True,
                   blockxsize=128, blockysize=128)
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(path, "w", **profile) as dst:
        dst.write(pixels)
        dst.write_mask(mask)
    summary = predict(path, tmp_path / "cli.tif", model=PAIR, device="cpu")
    out = segment(path, model=PAIR, device="cpu")
    assert out.attrs["LALE_GEO_SCALING"] == summary.scaling
    with rasterio.open(tmp_path / "cli.tif") as cli:
        np.testing.assert_array_equal(out.values, cli.read(1))


def test_segment_of_a_path_works_in_a_process_that_never_imported_rioxarray(rasterio_fixtures, tmp_path):
    import subprocess
    import sys

    code = ("import lale_geo, sys\n"
            "from tests.helpers import LocalModel, card_for\n"
            "out = lale_geo.segment(sys.argv[1], model=(LocalModel(4, radius=1), card_for(4, 128, 32)), device='cpu')\n"
            "print(out.rio.crs, int(out.shape[0]))")
    result = subprocess.run([sys.executable, "-c", code, str(rasterio_fixtures / "RGB.byte.tif")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["EPSG:32618", "718"]
