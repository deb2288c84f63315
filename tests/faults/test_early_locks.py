"""vectorize, stac and preview lock their output before any work: a second run to the same file fails at
once in one line naming the first (here: this test process, holding the lock itself)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from lale_geo.errors import OutputLockedError
from lale_geo.files import locked_outputs
from lale_geo.inference.predict import predict
from tests.faults.common import snapshot, write_scene
from tests.helpers import LocalModel, card_for


@pytest.fixture(scope="module")
def class_map(tmp_path_factory):
    folder = tmp_path_factory.mktemp("map")
    predict(write_scene(folder / "scene.tif", 128), folder / "map.tif", model=(LocalModel(3), card_for(3, 64, 16)),
            device="cpu", engine="torch")
    return folder / "map.tif"


def run(kind: str, src, dst):
    if kind == "vectorize":
        from lale_geo.maps.vector_files import vectorize_to_file

        return vectorize_to_file(src, dst)
    if kind == "stac":
        from lale_geo.maps.stac import write_stac_item

        return write_stac_item(src, dst)
    from lale_geo.maps.preview import render_preview

    return render_preview(src, dst)


@pytest.mark.parametrize(("kind", "name"), [("vectorize", "out.gpkg"), ("stac", "item.json"),
                                            ("preview", "quick.png")])
def test_a_locked_output_fails_before_any_work(tmp_path, class_map, monkeypatch, kind, name):
    import importlib

    opened = []
    for module in ("lale_geo.maps.polygons", "lale_geo.maps.stac", "lale_geo.maps.preview", "lale_geo.maps.info",
                   "lale_geo.io.classmap"):
        module = importlib.import_module(module)
        if hasattr(module, "open_raster"):
            real = module.open_raster
            monkeypatch.setattr(module, "open_raster", lambda *a, real=real, **k: opened.append(a) or real(*a, **k))
    dst = tmp_path / name
    with locked_outputs([dst]):
        before = snapshot(tmp_path)
        with pytest.raises(OutputLockedError) as error:
            run(kind, class_map, dst)
        assert f"pid {os.getpid()}" in str(error.value) and "\n" not in str(error.value)
        assert snapshot(tmp_path) == before
    assert opened == []  # refused before the map was even opened
    run(kind, class_map, dst)  # free again
    assert opened  # the check above watches the reads this command makes
    assert dst.exists() and np.all([not p.name.endswith(".lock") for p in tmp_path.iterdir()])
