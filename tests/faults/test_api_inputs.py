"""The library refuses what the CLI refuses, in one line naming the parameter: predict, plan and segment
share one validation of options, bands, types and models."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import rasterio
import xarray as xr
from rasterio.control import GroundControlPoint
from rasterio.crs import CRS

from lale_geo.errors import InvalidInputError
from lale_geo.inference.predict import plan, predict
from lale_geo.inference.segment import segment
from tests.faults.common import write_scene
from tests.helpers import LocalModel, card_for

CPU = {"device": "cpu", "engine": "torch"}
MODEL = (LocalModel(3), card_for(3, 64, 16))


def image(bands=3, size=64, dtype="uint8"):
    data = np.random.default_rng(0).integers(0, 255, (bands, size, size)).astype(dtype)
    return xr.DataArray(data, dims=("band", "y", "x"), coords={"band": np.arange(1, bands + 1)})


def one_line(error: pytest.ExceptionInfo, *needles: str) -> None:
    message = str(error.value)
    assert "\n" not in message, message
    for needle in needles:
        assert needle in message, message


@pytest.mark.parametrize(("option", "value", "needle"), [
    ("tile_sise", 256, "did you mean tile_size?"), ("batchsize", 4, "did you mean batch_size?"),
    ("weigths", "x", "did you mean weights?"), ("colour", 1, "unknown option")])
@pytest.mark.parametrize("entry", ["predict", "plan", "segment"])
def test_a_misspelt_option_names_the_nearest(tmp_path, entry, option, value, needle):
    src = write_scene(tmp_path / "s.tif", 64)
    call = {"predict": lambda: predict(src, tmp_path / "m.tif", model=MODEL, **{option: value}),
            "plan": lambda: plan(src, model=MODEL, **{option: value}),
            "segment": lambda: segment(image(), model=MODEL, **{option: value})}[entry]
    with pytest.raises(InvalidInputError) as error:
        call()
    one_line(error, f"{option}=", needle)
    assert not (tmp_path / "m.tif").exists()


@pytest.mark.parametrize(("option", "value"), [
    ("tile_size", "256"), ("tile_size", 0), ("tile_size", 25.5), ("overlap", -1), ("batch_size", "8"),
    ("bands", "1,2,3"), ("bands", [0, 1, 2]), ("bands", [1.5, 2, 3]), ("bands", []), ("bands", [True, 2, 3]),
    ("scale", "0,255"), ("scale", (0,)), ("scale", ("a", 255)), ("device", 0), ("engine", None),
    ("strict_domain", "yes"), ("weights", 3)])
@pytest.mark.parametrize("entry", ["predict", "segment"])
def test_wrong_types_are_one_line_errors_naming_the_option(tmp_path, entry, option, value):
    src = write_scene(tmp_path / "s.tif", 64)
    with pytest.raises(InvalidInputError) as error:
        if entry == "predict":
            predict(src, tmp_path / "m.tif", model=MODEL, **CPU | {option: value})
        else:
            segment(image(), model=MODEL, **CPU | {option: value})
    one_line(error, f"{option}=")


@pytest.mark.parametrize("model", [("a", "b"), "lale_s1", (MODEL[0],), (MODEL[1], MODEL[0]), 42])
def test_a_model_that_is_not_a_network_and_card_pair_is_named(tmp_path, model):
    with pytest.raises(InvalidInputError) as error:
        segment(image(), model=model)
    one_line(error, "model=", "(network, WeightsCard) pair")


@pytest.mark.parametrize(("bands", "needle"), [([0, 1, 2], "1-based"), ([4, 1, 2], "beyond the array's 3"),
                                               ([1, 2], "the weights need 3"), ([-1, 1, 2], "1-based")])
def test_segment_checks_bands_as_predict_does(bands, needle):
    with pytest.raises(InvalidInputError) as error:
        segment(image(), model=MODEL, bands=bands, **CPU)
    one_line(error, "bands=", needle)


def test_segment_takes_bands_in_the_order_given():
    da = image(4)
    picked = segment(da, model=MODEL, bands=[3, 1, 2], **CPU).values
    reordered = segment(da.isel(band=[2, 0, 1]), model=MODEL, **CPU).values
    np.testing.assert_array_equal(picked, reordered)


@pytest.mark.parametrize(("array", "needle"), [
    (image(dtype="complex64"), "complex pixels"), (image().astype(str), "are not numbers"),
    (image()[:, :0], "empty"), (image().rename(band="channel"), "expects dims band, y and x"),
    (np.zeros((3, 8, 8)), "xarray.DataArray")])
def test_segment_refuses_arrays_it_cannot_use(array, needle):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy ComplexWarning on the way
        with pytest.raises(InvalidInputError) as error:
            segment(array, model=MODEL, **CPU)
    one_line(error, needle)


def test_segment_finds_the_band_dim_by_name():
    da = image()
    np.testing.assert_array_equal(segment(da.transpose("y", "x", "band"), model=MODEL, **CPU).values,
                                  segment(da, model=MODEL, **CPU).values)


def test_a_gcp_scene_gives_a_map_with_the_same_control_points(tmp_path):
    gcps = [GroundControlPoint(0, 0, 500000, 6000000), GroundControlPoint(0, 96, 500192, 6000010),
            GroundControlPoint(80, 0, 499990, 5999840), GroundControlPoint(80, 96, 500180, 5999850)]
    src = tmp_path / "gcp.tif"
    with rasterio.open(src, "w", driver="GTiff", height=80, width=96, count=3, dtype="uint8", gcps=gcps,
                       crs=CRS.from_epsg(32633)) as dst:
        dst.write(np.random.default_rng(0).integers(0, 255, (3, 80, 96)).astype("uint8"))
    with pytest.warns(UserWarning, match="4 ground control points.*carries the same points"):
        predict(src, tmp_path / "map.tif", model=MODEL, **CPU)
    with rasterio.open(tmp_path / "map.tif") as out:
        points, crs = out.gcps
        assert crs == CRS.from_epsg(32633) and out.crs is None
        assert [(p.row, p.col, p.x, p.y) for p in points] == [(p.row, p.col, p.x, p.y) for p in gcps]
