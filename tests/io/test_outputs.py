"""lale_geo.io.outputs: a run's map, probability and confidence rasters, their tags and colour table, the
resume journal and the clean-up of what earlier runs left."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import rasterio
from rasterio.transform import Affine

from lale_geo.errors import RasterIOError
from lale_geo.inference.settings import InferenceSettings
from lale_geo.io.outputs import (
    OUTPUT_NODATA,
    FinishedRows,
    MapOutputs,
    class_counts,
    colormap,
    map_tags,
    remove_stale_files,
    run_key,
)
from lale_geo.io.scaling import Scaling
from tests.helpers import LocalModel, card_for

GRID = Affine(2, 0, 500000, 0, -2, 6000000)
KEY = "0123456789abcdef"
CARD = card_for(3)


def scene(path, height=24, width=20):
    with rasterio.open(path, "w", driver="GTiff", width=width, height=height, count=3, dtype="uint8",
                       crs="EPSG:32633", transform=GRID) as dst:
        dst.write(np.zeros((3, height, width), np.uint8))
    return rasterio.open(path)


def labels(height=24, width=20, seed=0):
    out = np.random.default_rng(seed).integers(0, 3, (height, width), dtype=np.uint8)
    out[0, :5] = OUTPUT_NODATA
    return out


def test_map_tags_record_the_model_classes_and_settings():
    resolved = InferenceSettings(engine="torch", device="cpu").resolve((LocalModel(3), CARD))
    tags = map_tags(resolved, "uint8 as is: 0-255", (3, 2, 1), "torch cpu")
    assert all(isinstance(v, str) for v in tags.values())
    assert (tags["LALE_GEO_MODEL"], tags["LALE_GEO_WEIGHTS"], tags["LALE_GEO_BANDS"]) == ("lale_s1", "test", "3,2,1")
    assert (tags["LALE_GEO_TILE_SIZE"], tags["LALE_GEO_OVERLAP"]) == ("128", "32")
    assert tags["LALE_GEO_SCALING"] == "uint8 as is: 0-255" and tags["LALE_GEO_ENGINE"] == "torch cpu"
    assert json.loads(tags["LALE_GEO_CLASSES"]) == ["c0", "c1", "c2"]
    assert json.loads(tags["LALE_GEO_COLOURS"]) == [[0, 20, 30], [10, 20, 30], [20, 20, 30]]
    assert tags["LALE_GEO_UNTRAINED"] == "no" and tags["LALE_GEO_TTA"] == "none"
    assert json.loads(tags["LALE_GEO_SETTINGS"])["weights_sha256"] == CARD.sha256


def test_the_colour_table_is_the_cards_colours_opaque_and_nodata_transparent():
    assert colormap(CARD) == {0: (0, 20, 30, 255), 1: (10, 20, 30, 255), 2: (20, 20, 30, 255),
                              OUTPUT_NODATA: (0, 0, 0, 0)}


def test_class_counts_by_chunks_are_a_256_bin_histogram():
    values = labels(37, 11)
    counts = class_counts(values, chunk=50)  # 407 pixels: 9 chunks, the last one short
    assert counts.shape == (256,) and counts.dtype == np.int64
    np.testing.assert_array_equal(counts, np.bincount(values.ravel(), minlength=256))
    assert counts.sum() == values.size and counts[OUTPUT_NODATA] == 5


def test_outputs_are_published_together_with_tags_and_the_run_files_removed(tmp_path):
    dst, confidence = tmp_path / "map.tif", tmp_path / "conf.tif"
    with scene(tmp_path / "scene.tif") as src:
        outputs = MapOutputs(src, CARD, {"LALE_GEO_MODEL": "lale_s1"}, dst, confidence=confidence, key=KEY)
        side = outputs.side_path("columns0-20.tif")
        assert side == tmp_path / f".map.tif.{KEY}.columns0-20.tif"
        side.write_bytes(b"column map")
        rows = FinishedRows(labels(), confidence=np.full((24, 20), 97, np.uint8))
        assert rows.nbytes == 2 * 24 * 20
        outputs.write_finished(0, FinishedRows(rows.labels[:10], confidence=rows.confidence[:10]))
        assert json.loads(outputs.journal.read_text())["rows_done"] == 10
        outputs.write_finished(10, FinishedRows(rows.labels[10:], confidence=rows.confidence[10:]))
        outputs.commit()
    np.testing.assert_array_equal(outputs.counts, class_counts(rows.labels))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["conf.tif", "map.tif", "scene.tif"]
    with rasterio.open(dst) as out:
        assert out.nodata == OUTPUT_NODATA and out.transform == GRID and out.crs.to_epsg() == 32633
        assert out.colormap(1)[1] == (10, 20, 30, 255) and out.descriptions == ("land cover class",)
        assert out.tags()["LALE_GEO_MODEL"] == "lale_s1" and "LALE_GEO_UNITS" not in out.tags()
        np.testing.assert_array_equal(out.read(1), rows.labels)
    with rasterio.open(confidence) as out:
        assert out.tags()["LALE_GEO_UNITS"] == "percent" and out.descriptions == ("top-1 probability",)
        np.testing.assert_array_equal(out.read(1), rows.confidence)


def test_a_partial_map_is_refused_and_abort_leaves_nothing(tmp_path):
    with scene(tmp_path / "scene.tif") as src:
        outputs = MapOutputs(src, CARD, {}, tmp_path / "map.tif", key=KEY)
        outputs.write_finished(0, FinishedRows(labels()[:8]))
        with pytest.raises(RasterIOError, match=r"map.tif: only rows 0-8 of 24 were written; nothing was published$"):
            outputs.commit()
        outputs.abort()
    assert [p.name for p in tmp_path.iterdir()] == ["scene.tif"]


def test_a_resumed_run_skips_the_rows_its_journal_lists(tmp_path):
    dst, values = tmp_path / "map.tif", labels()
    with scene(tmp_path / "scene.tif") as src:
        first = MapOutputs(src, CARD, {}, dst, key=KEY)
        first.write_finished(0, FinishedRows(values[:10]))  # then the run is killed
        second = MapOutputs(src, CARD, {}, dst, key=KEY, resume=True)
        assert second.rows_done == 10 and second.tag == first.tag
        wrong = values.copy()
        wrong[:10] = 0  # rows already written are not written again, also in a band that straddles them
        second.write_finished(0, FinishedRows(wrong[:8]))
        second.write_finished(8, FinishedRows(wrong[8:]))
        second.commit()
    with rasterio.open(dst) as out:
        np.testing.assert_array_equal(out.read(1), values)
    np.testing.assert_array_equal(second.counts, class_counts(values))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.tif", "scene.tif"]  # the journal and partials went


def test_stale_files_of_earlier_runs_are_removed_and_the_rest_kept(tmp_path):
    out = tmp_path / "map.tif"
    stale = [".map.tif.123-abcdef01.part.tif", ".map.tif.123-abcdef01.cog.part.tif",
             ".map.tif.123-abcdef01.part.tif.ovr1", ".map.tif.123-abcdef01.part.tif.vrt",
             f".map.tif.{'f' * 16}.journal.json", f".map.tif.{KEY}.columns0-512.tif.part",
             f".map.tif.{'e' * 16}.columns0-512.tif"]
    kept = ["map.tif", "other.tif", ".other.tif.123-abcdef01.part.tif", ".map.tif.lock",
            ".map.tif.999-00000000.part.tif", f".map.tif.{KEY}.columns0-512.tif"]
    for name in stale + kept:
        (tmp_path / name).write_bytes(b"")
    remove_stale_files([out], keep={".map.tif.999-00000000.part.tif"}, keep_key=KEY)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(kept)


def test_the_run_key_changes_with_the_input_file_and_the_settings(tmp_path):
    src = tmp_path / "scene.tif"
    src.write_bytes(b"12345")
    scaling = Scaling((0.0,) * 3, (255.0,) * 3, "uint8 as is")
    key = lambda **change: run_key(**dict(src=str(src), card=CARD, settings_json="{}", bands=[1, 2, 3],
                                          scaling=scaling, engine="torch", outputs=[tmp_path / "map.tif"]) | change)
    first = key()
    assert len(first) == 16 and first == key()
    assert key(bands=[3, 2, 1]) != first and key(settings_json='{"tta": "flips"}') != first
    assert key(outputs=[tmp_path / "other.tif"]) != first
    os.utime(src, ns=(0, 0))
    assert key() != first  # the same file, changed since
