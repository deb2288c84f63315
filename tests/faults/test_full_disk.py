"""A full disk (RLIMIT_FSIZE) at any point of writing the map: the run fails in one line, no broken file is
published, the temporary files are removed, and a good map at the target survives byte for byte."""

from __future__ import annotations

import pytest
import rasterio

from lale_geo.errors import RasterIOError
from lale_geo.inference.predict import predict
from tests.faults.common import (
    CLI_MODEL,
    assert_failed_in_one_line,
    assert_nothing_lost,
    file_size_limit,
    run_cli,
    snapshot,
    write_scene,
)
from tests.helpers import LocalModel, card_for

CPU = {"device": "cpu", "engine": "torch"}


@pytest.fixture(scope="module")
def big_map(tmp_path_factory):
    """A 600x600 px scene (its COG has overviews) and its map from an unlimited run."""
    folder = tmp_path_factory.mktemp("big")
    src = write_scene(folder / "scene.tif", 600)
    reference = folder / "reference.tif"
    predict(src, reference, model=(LocalModel(4, radius=1), card_for(4, 128, 32)), **CPU)
    return src, reference


# Limits from a few bytes (the first strip) to past the finished map (the run must then succeed).
LIMITS = [300, 2_000, 8_000, 20_000, 40_000, 60_000, 90_000, 150_000, 1_000_000]


@pytest.mark.parametrize("overwrite", [False, True])
@pytest.mark.parametrize("limit", LIMITS)
def test_full_disk_anywhere_in_the_write_publishes_nothing_broken(big_map, tmp_path, limit, overwrite):
    src, reference = big_map
    out = tmp_path / "map.tif"
    if overwrite:
        out.write_bytes(reference.read_bytes()[:-1] + b"\x01")  # "a good old map": any other bytes
    before = snapshot(tmp_path)
    size = reference.stat().st_size
    try:
        with file_size_limit(limit):
            predict(src, out, model=(LocalModel(4, radius=1), card_for(4, 128, 32)), overwrite=overwrite, **CPU)
    except RasterIOError as e:
        assert str(e).startswith(f"{out}: ") and "\n" not in str(e)
        assert limit < size * 2, "a limit far past the map's size must not fail"
        assert_nothing_lost(tmp_path, before)
    else:
        # the map is one file of `size` bytes: a limit below it cannot have taken effect if this passed
        assert limit >= size, f"a {limit} B limit did not stop a {size} B map: RLIMIT_FSIZE had no effect"
        assert out.read_bytes() == reference.read_bytes()
        assert sorted(p.name for p in tmp_path.iterdir()) == ["map.tif"]


def test_the_reference_map_has_overviews_and_the_limits_span_it(big_map):
    with rasterio.open(big_map[1]) as dst:
        assert dst.overviews(1)
    size = big_map[1].stat().st_size
    assert min(LIMITS) < size < max(LIMITS) / 2  # both branches above are reached


@pytest.mark.parametrize(("limit", "existing"), [(1_000, True), (4_000, True), (4_000, False)])
def test_cli_full_disk_fails_in_one_line_and_keeps_the_old_map(tmp_path, limit, existing):
    src = write_scene(tmp_path / "scene.tif", 128)
    out = tmp_path / "map.tif"
    if existing:
        out.write_bytes(b"II*\x00 a good old map")
    before = snapshot(tmp_path)
    result = run_cli("predict", src, "-o", out, *CLI_MODEL, *(["--overwrite"] if existing else []),
                     file_size_limit=limit)
    assert_failed_in_one_line(result, str(out), codes=(1,))
    assert_nothing_lost(tmp_path, before)
