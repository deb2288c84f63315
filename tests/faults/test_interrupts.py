"""Interrupted predict runs: Ctrl-C says in one line how to continue, and a run killed at a random moment
and resumed gives the map of an uninterrupted run, byte for byte."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.faults.common import CLI_MODEL, assert_failed_in_one_line, run_cli, write_scene

PREDICT = [*CLI_MODEL, "--batch-size", "1"]  # many small steps, so there is time to interrupt between them


def wait_for_rows(out: Path, proc, rows: int = 1, timeout: float = 120) -> bool:
    """Wait until the run's journal lists at least ``rows`` finished rows; False if the run ended first."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        for journal in out.parent.glob(f".{out.name}.*.journal.json"):
            try:
                if json.loads(journal.read_text())["rows_done"] >= rows:
                    return True
            except (ValueError, FileNotFoundError, KeyError):
                pass  # being replaced
        time.sleep(0.02)
    return False


def test_ctrl_c_in_predict_says_how_to_resume(tmp_path):
    src = write_scene(tmp_path / "scene.tif", 384)
    out = tmp_path / "map.tif"
    proc = run_cli("predict", src, "-o", out, *PREDICT, wait=False)
    assert wait_for_rows(out, proc), proc.communicate()
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    result = type("Result", (), {"returncode": proc.returncode, "stdout": stdout, "stderr": stderr})
    line = assert_failed_in_one_line(result, "interrupted", "--resume", codes=(130,))
    assert "Aborted!" not in stdout + stderr, line
    assert not out.exists()
    resumed = run_cli("predict", src, "-o", out, *PREDICT, "--resume")
    assert resumed.returncode == 0 and out.exists(), resumed.stderr


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """A 256 px scene, its map from an uninterrupted run, and how long that run took."""
    folder = tmp_path_factory.mktemp("reference")
    src = write_scene(folder / "scene.tif", 256, seed=3)
    started = time.perf_counter()
    result = run_cli("-q", "predict", src, "-o", folder / "map.tif", *PREDICT)
    assert result.returncode == 0, result.stderr
    return src, (folder / "map.tif").read_bytes(), time.perf_counter() - started


@pytest.mark.slow
@settings(max_examples=5, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(rows=st.integers(0, 255), delay=st.floats(0.0, 0.5))
def test_a_run_killed_at_any_moment_resumes_to_the_same_map(reference, tmp_path_factory, rows, delay):
    """SIGKILL ``delay`` s after the journal lists ``rows`` finished rows (0: during start-up, before any
    journal), then --resume: the map is byte-identical and no temporary file is left."""
    src, expected, _ = reference
    folder = tmp_path_factory.mktemp("killed")
    out = folder / "map.tif"
    proc = run_cli("-q", "predict", src, "-o", out, *PREDICT, wait=False)
    if rows:
        wait_for_rows(out, proc, rows)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    if not out.exists():  # else the run finished before the kill: its map is checked as it is
        resumed = run_cli("-q", "predict", src, "-o", out, *PREDICT, "--resume")
        assert resumed.returncode == 0, resumed.stderr
    assert out.read_bytes() == expected
    assert [p.name for p in folder.iterdir()] == ["map.tif"]
