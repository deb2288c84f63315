"""A run to an output that another run is writing fails at once in one line naming the other (its pid),
even with --overwrite, and touches nothing; once the other is done the output is free. The other run is
this test process holding the lock itself: nothing is raced against a clock."""

from __future__ import annotations

import os

import numpy as np
import pytest
import rasterio

from lale_geo.files import locked_outputs
from tests.faults.common import CLI_MODEL, assert_failed_in_one_line, run_cli, snapshot, write_scene


@pytest.mark.parametrize("extra", [[], ["--overwrite"]])
def test_a_second_run_to_a_locked_output_fails_at_once_naming_the_first(tmp_path, extra):
    src = write_scene(tmp_path / "scene.tif", 128)
    out = tmp_path / "map.tif"
    with locked_outputs([out]):
        before = snapshot(tmp_path)
        loser = run_cli("-q", "predict", src, "-o", out, *CLI_MODEL, *extra)
        assert_failed_in_one_line(loser, str(out), f"pid {os.getpid()}", codes=(1,))
        assert snapshot(tmp_path) == before
    winner = run_cli("-q", "predict", src, "-o", out, *CLI_MODEL, *extra)
    assert winner.returncode == 0, winner.stderr
    with rasterio.open(out) as dst:
        assert not np.any(dst.read(1) == 255), "every pixel of the scene is valid, so the map has no nodata"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.tif", "scene.tif"]
