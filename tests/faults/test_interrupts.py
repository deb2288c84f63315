"""Interrupted predict runs: Ctrl-C and SIGTERM say in one line how to continue, and a run killed at any
moment and resumed gives the map of an uninterrupted run, byte for byte. Every interrupt comes at a point
the test controls (after a given number of tiles), never after a delay raced against the run."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.faults.common import CLI_MODEL, assert_failed_in_one_line, run_cli, write_scene

PREDICT = [*CLI_MODEL, "--batch-size", "1"]  # many small steps: a tile count is a point inside the run


def run_interrupted(signal_name: str, tiles: int, *args) -> subprocess.CompletedProcess:
    """``lale-geo args`` that sends itself ``signal_name`` once ``tiles`` tiles are done."""
    return subprocess.run([sys.executable, "-m", "tests.faults.interrupt_at", signal_name, str(tiles),
                           *map(str, args)], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(("signal_name", "code", "word"), [("SIGINT", 130, "interrupted"),
                                                            ("SIGTERM", 143, "terminated (SIGTERM)")])
def test_an_interrupt_in_predict_says_how_to_resume_and_resume_finishes(tmp_path, signal_name, code, word):
    src = write_scene(tmp_path / "scene.tif", 256)
    out = tmp_path / "map.tif"
    reference = run_cli("-q", "predict", src, "-o", tmp_path / "reference.tif", *PREDICT)
    assert reference.returncode == 0, reference.stderr
    result = run_interrupted(signal_name, 3, "predict", src, "-o", out, *PREDICT)
    line = assert_failed_in_one_line(result, word, "--resume", codes=(code,))
    assert "Aborted!" not in result.stdout + result.stderr, line
    assert not out.exists()
    assert list(tmp_path.glob(".map.tif.*.part.tif")), "the partial map is kept for --resume"
    resumed = run_cli("-q", "predict", src, "-o", out, *PREDICT, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert out.read_bytes() == (tmp_path / "reference.tif").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.tif", "reference.tif", "scene.tif"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """A 256 px scene (25 tiles) and its map from an uninterrupted run."""
    folder = tmp_path_factory.mktemp("reference")
    src = write_scene(folder / "scene.tif", 256, seed=3)
    result = run_cli("-q", "predict", src, "-o", folder / "map.tif", *PREDICT)
    assert result.returncode == 0, result.stderr
    return src, (folder / "map.tif").read_bytes(), None


@pytest.mark.slow
@settings(max_examples=5, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(tiles=st.integers(1, 24))
def test_a_run_killed_at_any_tile_resumes_to_the_same_map(reference, tmp_path_factory, tiles):
    """SIGKILL once ``tiles`` of the 25 tiles are done, then --resume: the map is byte-identical and no
    temporary file is left."""
    src, expected, _ = reference
    folder = tmp_path_factory.mktemp("killed")
    out = folder / "map.tif"
    killed = run_interrupted("SIGKILL", tiles, "-q", "predict", src, "-o", out, *PREDICT)
    assert killed.returncode == -9 and not out.exists()
    resumed = run_cli("-q", "predict", src, "-o", out, *PREDICT, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert out.read_bytes() == expected
    assert [p.name for p in folder.iterdir()] == ["map.tif"]


def test_a_new_run_removes_what_a_killed_run_left_overviews_included(tmp_path):
    src = write_scene(tmp_path / "scene.tif", 1100)  # over one COG block: overview files are made
    out = tmp_path / "map.tif"
    killed = run_interrupted("SIGKILL", 30, "-q", "predict", src, "-o", out, *CLI_MODEL)
    assert killed.returncode == -9
    left = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".map.tif"))
    assert any(".ovr1" in name for name in left), left
    fresh = run_cli("-q", "predict", src, "-o", out, *CLI_MODEL)  # without --resume
    assert fresh.returncode == 0, fresh.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.tif", "scene.tif"]
