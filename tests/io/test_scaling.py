"""lale_geo.io.scaling: the per-scene value range mapped to the network's [0, 1] input, and the fill value of
masked pixels."""

from __future__ import annotations

import numpy as np
import pytest

from lale_geo.errors import InvalidInputError
from lale_geo.inference.engines import normalise
from lale_geo.io.scaling import Scale, Scaling, fixed_scaling, percentile_scaling, sample_scaling

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


# fixed_scaling -----------------------------------------------------------------------------------------


def test_a_user_scale_is_broadcast_to_every_band_or_taken_per_band():
    assert fixed_scaling("uint16", 3, (0, 255), (100, 4000)) == Scaling(
        (100.0,) * 3, (4000.0,) * 3, "user --scale")
    per_band = fixed_scaling("float32", 2, (0, 1), ([0, 10], [100, 20]))  # wins over the card's range too
    assert (per_band.low, per_band.high, per_band.rule) == ((0.0, 10.0), (100.0, 20.0), "user --scale")


@pytest.mark.parametrize("scale", [(5, 5), (10, 2), ([0, 3, 0], [1, 3, 1])])
def test_a_user_scale_whose_min_is_not_below_its_max_is_refused_in_one_line(scale):
    with pytest.raises(InvalidInputError, match=r"^scale=.*: MIN must be below MAX$"):
        fixed_scaling("uint16", 3, (0, 255), scale)


def test_a_per_band_scale_of_the_wrong_length_is_refused_in_one_line():
    with pytest.raises(InvalidInputError, match=r"scale=\[0, 0\],\[255, 255\]: 2 values for 3 band\(s\)"):
        fixed_scaling("uint8", 3, (0, 255), ([0, 0], [255, 255]))


def test_the_weights_input_range_applies_unless_it_is_0_255_then_uint8_is_taken_as_is():
    assert fixed_scaling("uint16", 4, (0, 10000), None) == Scaling(
        (0.0,) * 4, (10000.0,) * 4, "weights' input range")
    assert fixed_scaling(np.uint8, 3, (0, 255), None) == Scaling((0.0,) * 3, (255.0,) * 3, "uint8 as is")
    for dtype in ("uint16", "int16", "float32"):  # the data must be sampled
        assert fixed_scaling(dtype, 3, (0, 255), None) is None


# percentile_scaling / sample_scaling -------------------------------------------------------------------


def test_percentiles_are_2_and_98_per_band_and_a_flat_band_gets_a_unit_range():
    values = [np.arange(101, dtype=np.uint16), np.arange(0, 1010, 10, dtype=np.int32), np.full(50, 7.0)]
    scaling = percentile_scaling(values, "the test")
    assert scaling.low == (2.0, 20.0, 7.0)
    assert scaling.high == (98.0, 980.0, 8.0)
    assert scaling.rule == "per-band 2-98 % percentiles of the test"


def test_no_valid_pixels_give_the_unit_range():
    scaling = percentile_scaling([np.array([], np.uint16)] * 3, "nothing")
    assert scaling == Scaling((0.0,) * 3, (1.0,) * 3, "no valid pixels")


def test_a_sample_is_scaled_by_its_valid_pixels_only():
    sample = np.zeros((2, 10, 11), np.uint16)
    sample[0, :, 1:] = np.arange(1, 101).reshape(10, 10) * 10  # column 0: nodata in every band
    sample[1, :, 1:] = 500
    sample[1, 0, 0] = 9  # one band is not nodata: the pixel is valid
    scaling = sample_scaling(sample, 0, (0, 255))
    # band 0's valid values: 0 (pixel 0, 0: not nodata in every band), 10, 20, ..., 1000; the 9 nodata zeros
    # of column 0 would give a low of 0
    assert (scaling.low[0], scaling.high[0]) == (20.0, 980.0)
    assert (scaling.low[1], scaling.high[1]) == (500.0, 501.0)  # flat but for the 9: 2-98 % is flat
    assert scaling.rule.endswith("a strided sample")
    assert sample_scaling(sample, 0, (0, 255), (0, 1000)).rule == "user --scale"  # no sample needed


# Scale and Scaling -------------------------------------------------------------------------------------


def test_scale_of_gives_float64_arrays_that_broadcast_over_the_bands():
    scale = Scale.of(0, [255, 1000, 4000])
    assert scale.low.dtype == scale.high.dtype == np.float64
    assert scale.low.shape == () and scale.high.shape == (3,)


@pytest.mark.parametrize("scale", [Scale.of(0, 255), Scale.of([0, 10, 100], [1000, 2000, 3000])])
def test_fill_values_normalise_to_zero(scale):
    fill = scale.fill(MEAN)
    assert len(fill) == 3 and all(isinstance(v, float) for v in fill)
    low, high = np.broadcast_to(scale.low, 3), np.broadcast_to(scale.high, 3)
    assert all(lo <= f <= hi for lo, f, hi in zip(low, fill, high))
    tiles = np.broadcast_to(np.asarray(fill, np.float32)[None, :, None, None], (2, 3, 4, 4))
    np.testing.assert_allclose(normalise(tiles, scale, MEAN, STD), 0, atol=1e-5)  # float32 rounding only


def test_scaling_gives_its_scale_and_describes_itself_in_one_line():
    scaling = Scaling((0.0, 1.5), (255.0, 1e6), "user --scale")
    np.testing.assert_array_equal(scaling.scale.low, [0.0, 1.5])
    np.testing.assert_array_equal(scaling.scale.high, [255.0, 1e6])
    assert scaling.describe() == "user --scale: 0-255, 1.5-1e+06"
