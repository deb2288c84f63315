"""A full disk (RLIMIT_FSIZE) while vectorize (GeoPackage), stac or preview writes: the command fails in
one line, nothing is left under the final name (nor temporary files), and an existing file that
--overwrite was to replace is byte-identical afterwards."""

from __future__ import annotations

import pyogrio
import pytest

from lale_geo.inference.predict import predict
from tests.faults.common import (
    assert_failed_in_one_line,
    assert_nothing_lost,
    file_size_limit,
    invoke,
    run_cli,
    snapshot,
    write_scene,
)
from tests.helpers import LocalModel, card_for

CPU = {"device": "cpu", "engine": "torch"}
OUTPUTS = {"vectorize": "polygons.gpkg", "stac": "item.json", "preview": "preview.png"}


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A 128 px lale-geo map, and the size of each command's output of it on an unlimited disk."""
    folder = tmp_path_factory.mktemp("made")
    src = write_scene(folder / "scene.tif", 128)
    predict(src, folder / "map.tif", model=(LocalModel(4, radius=1), card_for(4, 64, 16)), **CPU)
    sizes = {}
    for command, name in OUTPUTS.items():
        result = invoke(command, folder / "map.tif", "-o", folder / name)
        assert result.returncode == 0, result.stdout + result.stderr
        sizes[command] = (folder / name).stat().st_size
    sizes["polygons"] = pyogrio.read_info(folder / OUTPUTS["vectorize"], force_feature_count=True)["features"]
    return folder / "map.tif", sizes


@pytest.mark.parametrize("existing", [False, True])
@pytest.mark.parametrize("fraction", [0.02, 0.5, 0.95])
@pytest.mark.parametrize("command", sorted(OUTPUTS))
def test_full_disk_fails_in_one_line_and_keeps_the_old_file(made, tmp_path, command, fraction, existing):
    class_map, sizes = made
    out = tmp_path / OUTPUTS[command]
    if existing:
        out.write_bytes(b"a good old file")
    before = snapshot(tmp_path)
    with file_size_limit(max(int(sizes[command] * fraction), 100)):
        result = invoke(command, class_map, "-o", out, *(["--overwrite"] if existing else []))
    if result.returncode == 0 and fraction > 0.9:  # near the full size a SQLite file may just fit
        assert [p.name for p in tmp_path.iterdir()] == [out.name]
        assert pyogrio.read_info(out, force_feature_count=True)["features"] == sizes["polygons"]
        return
    assert_failed_in_one_line(result, str(out), codes=(1,))
    assert_nothing_lost(tmp_path, before)


def test_cli_full_disk_in_vectorize_is_one_line(made, tmp_path):
    """The same in a real process (SQLite's own writes and temporary files included)."""
    class_map, sizes = made
    out = tmp_path / "polygons.gpkg"
    out.write_bytes(b"a good old file")
    before = snapshot(tmp_path)
    result = run_cli("vectorize", class_map, "-o", out, "--overwrite", file_size_limit=sizes["vectorize"] // 2)
    assert_failed_in_one_line(result, str(out), codes=(1,))
    assert_nothing_lost(tmp_path, before)
