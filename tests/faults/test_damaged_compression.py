"""Damaged DEFLATE and LZW tiles: the run either fails in one line naming the read, or (when the damage
decodes to the same pixels) gives the map of the undamaged scene; never a silently different map."""

from __future__ import annotations

import pytest
import rasterio

from lale_geo.errors import RasterIOError
from lale_geo.inference.predict import predict
from tests.faults.common import snapshot, write_scene
from tests.faults.tiff import damage_tile
from tests.helpers import LocalModel, card_for

CPU = {"device": "cpu", "engine": "torch"}
MODEL = (LocalModel(3), card_for(3, 64, 16))


# Found with this test, not fixed yet: junk in the middle or end of a DEFLATE tile decodes to other
# pixels without any GDAL error or warning (no checksum is checked on this path), so the map changes.
SILENT = pytest.mark.xfail(strict=True, reason="issue 12: a damaged DEFLATE tile decodes silently")
CASES = [("LZW", 0.1), ("LZW", 0.5), ("LZW", 0.9), ("DEFLATE", 0.1),
         pytest.param("DEFLATE", 0.5, marks=SILENT), pytest.param("DEFLATE", 0.9, marks=SILENT)]


@pytest.mark.parametrize(("compress", "fraction"), CASES)
def test_a_damaged_tile_fails_in_one_line_or_changes_nothing(tmp_path, compress, fraction):
    profile = {"tiled": True, "blockxsize": 64, "blockysize": 64, "compress": compress}
    good = write_scene(tmp_path / "good.tif", 128, **profile)
    predict(good, tmp_path / "good_map.tif", model=MODEL, **CPU)
    bad = write_scene(tmp_path / "bad.tif", 128, **profile)
    damage_tile(bad, 3, fraction)
    before = snapshot(tmp_path)
    try:
        predict(bad, tmp_path / "bad_map.tif", model=MODEL, **CPU)
    except RasterIOError as e:
        assert "\n" not in str(e) and "read failed" in str(e), str(e)
        assert snapshot(tmp_path) == before
    else:
        with rasterio.open(good) as a, rasterio.open(bad) as b:
            same_pixels = (a.read() == b.read()).all()
        assert same_pixels, "a damaged tile decoded to other pixels without an error"
        assert (tmp_path / "bad_map.tif").read_bytes() == (tmp_path / "good_map.tif").read_bytes()
