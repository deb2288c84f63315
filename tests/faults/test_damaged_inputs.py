"""Damaged inputs: a tile whose bytes are broken, or a VRT whose source is gone, ends the run in one line
that names the window and GDAL's own message, and no map is written."""

from __future__ import annotations

import pytest

from lale_geo.errors import RasterIOError
from lale_geo.inference.predict import predict
from tests.faults.common import CLI_MODEL, assert_failed_in_one_line, run_cli, snapshot, write_scene
from tests.faults.tiff import tile_extents
from tests.helpers import LocalModel, card_for

CPU = {"device": "cpu", "engine": "torch"}
MODEL = (LocalModel(3), card_for(3, 64, 16))
JUNK = {"marker": b"\xff\xd3\xff\xd5" * 4, "end of image": b"\xff\xd9" * 4, "zeros": bytes(64)}


def damaged_jpeg_scene(path, tile: int, junk: bytes):
    """A 128x128 px JPEG-compressed, 64 px tiled scene with ``junk`` written into tile ``tile``."""
    write_scene(path, 128, tiled=True, blockxsize=64, blockysize=64, compress="JPEG")
    offset, count = tile_extents(path)[tile]
    with open(path, "r+b") as f:
        f.seek(offset + count // 2)
        f.write(junk)
    return path


@pytest.mark.parametrize("tile", [0, 3])
@pytest.mark.parametrize("junk", ["marker", "end of image"])
def test_a_damaged_jpeg_tile_is_an_error_naming_the_window_and_libjpeg(tmp_path, tile, junk):
    src = damaged_jpeg_scene(tmp_path / "scene.tif", tile, JUNK[junk])
    before = snapshot(tmp_path)
    with pytest.raises(RasterIOError, match=r"read failed at row \d+, col \d+ .*JPEG") as error:
        predict(src, tmp_path / "map.tif", model=MODEL, **CPU)
    assert "\n" not in str(error.value)
    assert snapshot(tmp_path) == before


def test_cli_damaged_jpeg_tile_fails_in_one_line(tmp_path):
    src = damaged_jpeg_scene(tmp_path / "scene.tif", 3, JUNK["marker"])
    before = snapshot(tmp_path)
    result = run_cli("predict", src, "-o", tmp_path / "map.tif", *CLI_MODEL)
    assert_failed_in_one_line(result, "read failed", "Corrupt JPEG data", codes=(1,))
    assert snapshot(tmp_path) == before


def test_a_vrt_with_a_missing_source_names_the_source(tmp_path):
    source = write_scene(tmp_path / "source.tif", 128)
    vrt = tmp_path / "scene.vrt"
    vrt.write_text(f"""<VRTDataset rasterXSize="128" rasterYSize="128">
  <SRS>EPSG:32633</SRS><GeoTransform>500000, 2, 0, 6000000, 0, -2</GeoTransform>
{"".join(f'''  <VRTRasterBand dataType="Byte" band="{b}"><SimpleSource>
    <SourceFilename relativeToVRT="1">source.tif</SourceFilename><SourceBand>{b}</SourceBand>
    <SrcRect xOff="0" yOff="0" xSize="128" ySize="128"/><DstRect xOff="0" yOff="0" xSize="128" ySize="128"/>
  </SimpleSource></VRTRasterBand>
''' for b in (1, 2, 3))}</VRTDataset>""")
    source.unlink()
    with pytest.raises(RasterIOError, match="source.tif") as error:
        predict(vrt, tmp_path / "map.tif", model=MODEL, **CPU)
    assert "\n" not in str(error.value) and "corrupt or truncated" not in str(error.value)
    assert not (tmp_path / "map.tif").exists()
