"""Inputs the models cannot take are refused in one line before any compute: complex pixels, a scale that
is not two finite numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner

from lale_geo.cli.main import cli
from lale_geo.errors import InvalidInputError
from lale_geo.inference.predict import predict
from lale_geo.io.scaling import fixed_scaling
from tests.faults.common import CLI_MODEL, GRID, snapshot, write_scene
from tests.helpers import LocalModel, card_for

CPU = {"device": "cpu", "engine": "torch"}
MODEL = (LocalModel(3), card_for(3, 64, 16))
BAD_SCALES = [(0, math.inf), (-math.inf, math.inf), (math.nan, 1), (0, math.nan), (-math.inf, 0)]


@pytest.mark.parametrize("scale", BAD_SCALES)
def test_non_finite_scale_is_refused(scale):
    with pytest.raises(InvalidInputError, match="finite"):
        fixed_scaling("uint16", 3, (0, 255), scale)


@pytest.mark.parametrize("value", ["0,inf", "-inf,inf", "nan,1", "", ",", "1", "1,2,3"])
def test_cli_bad_scale_is_one_line(tmp_path, value):
    src = write_scene(tmp_path / "scene.tif", 64)
    before = snapshot(tmp_path)
    result = CliRunner().invoke(cli, ["predict", str(src), "-o", str(tmp_path / "map.tif"), *CLI_MODEL,
                                      "--scale", value])
    assert result.exit_code in (1, 2) and "Traceback" not in result.output, result.output
    assert len([line for line in result.output.splitlines() if "Error" in line]) == 1, result.output
    assert "--scale" in result.output
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("dtype", ["complex64", "complex128", "complex_int16"])
def test_complex_input_is_refused(tmp_path, dtype):
    path = tmp_path / "scene.tif"
    with rasterio.open(path, "w", driver="GTiff", width=32, height=32, count=3, dtype=dtype, crs="EPSG:32633",
                       transform=GRID) as dst:
        if dtype != "complex_int16":  # numpy has no complex int16; GDAL stores zeros
            dst.write(np.ones((3, 32, 32), dtype))
    with pytest.raises(InvalidInputError, match="complex") as error:
        predict(path, tmp_path / "map.tif", model=MODEL, **CPU)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "map.tif").exists()
