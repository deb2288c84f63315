"""preview draws only class ids it has colours for: negative ids (no colour table has them) are drawn
as nodata and named so in the legend, never with colours from the end of a lookup table."""

from __future__ import annotations

import numpy as np
from PIL import Image

from lale_geo.maps.preview import render_preview
from tests.faults.common import write_class_map

WHITE = (255, 255, 255)  # how preview draws nodata


def _left_panel(png, shape) -> np.ndarray:
    return np.asarray(Image.open(png).convert("RGB"))[:shape[0], :shape[1]]


def test_negative_ids_are_drawn_as_nodata_and_named_in_the_legend(tmp_path):
    labels = np.zeros((64, 64), np.int16)
    labels[:, 16:32] = 1
    labels[:, 32:48] = -1  # would be the colour of the last id (1) with a table indexed by id
    labels[:, 48:] = -2
    legend = render_preview(write_class_map(tmp_path / "map.tif", labels), tmp_path / "p.png", size=64)
    picture = _left_panel(tmp_path / "p.png", labels.shape)
    assert (picture[:, 32:] == WHITE).all()
    for column in (0, 16):  # the real classes keep their own, non-white colours
        assert (picture[:, column:column + 16] == picture[0, column]).all()
        assert tuple(picture[0, column]) != WHITE
    assert tuple(picture[0, 0]) != tuple(picture[0, 16])
    assert legend[:2] == ["class 0", "class 1"]
    assert "negative" in legend[2] and "-2, -1" in legend[2] and "not drawn" in legend[2]


def test_a_nodata_id_that_is_negative_is_not_in_the_legend(tmp_path):
    labels = np.full((32, 32), 3, np.int16)
    labels[:8] = -9999
    legend = render_preview(write_class_map(tmp_path / "map.tif", labels, nodata=-9999), tmp_path / "p.png",
                            size=32)
    assert legend == ["class 3"]
    assert (_left_panel(tmp_path / "p.png", labels.shape)[:8] == WHITE).all()


def test_large_uint32_ids_need_no_table_as_large(tmp_path):
    labels = np.full((32, 32), 2**32 - 2, np.uint32)
    labels[:16] = 5
    legend = render_preview(write_class_map(tmp_path / "map.tif", labels), tmp_path / "p.png", size=32)
    assert legend == ["class 5", f"class {2**32 - 2}"]
