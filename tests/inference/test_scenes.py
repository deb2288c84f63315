"""Many scenes in one run: which scenes a list of sources names, and where each map goes (the runs
themselves are tested through the CLI, tests/cli/test_predict_many.py)."""

import pytest

from lale_geo.errors import InvalidInputError
from lale_geo.inference.scenes import scene_list, scene_outputs


def test_folders_are_replaced_by_their_rasters_sorted_and_files_and_urls_kept_as_given(tmp_path):
    folder = tmp_path / "scenes"
    folder.mkdir()
    for name in ("b.tif", "a.TIF", "c.jp2", "notes.txt", "d.vrt"):
        (folder / name).write_text("x")
    (folder / "sub.tif").mkdir()  # a folder named like a raster is not a scene
    listed = scene_list([folder, "https://example.com/x/e.tif", str(tmp_path / "f.tif")])
    assert listed == [str(folder / n) for n in ("a.TIF", "b.tif", "c.jp2", "d.vrt")] + [
        "https://example.com/x/e.tif", str(tmp_path / "f.tif")]


def test_a_folder_without_rasters_is_an_error_naming_it(tmp_path):
    with pytest.raises(InvalidInputError, match=f"{tmp_path}: no rasters"):
        scene_list([tmp_path])


def test_each_scene_maps_to_its_own_name_and_two_scenes_of_one_name_are_refused(tmp_path):
    out = tmp_path / "maps"
    assert scene_outputs(["x/a.tif", "https://h/p/b.jp2?sig=1"], out) == [out / "a.tif", out / "b.tif"]
    with pytest.raises(InvalidInputError, match="y/a.vrt: has the name of x/a.tif"):
        scene_outputs(["x/a.tif", "y/a.vrt"], out)
