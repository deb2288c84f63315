"""Two runs to the same output started together: the one that comes second to the output fails at once in
one line naming the other (its pid), even with --overwrite, and the winner publishes a complete map."""

from __future__ import annotations

import numpy as np
import rasterio

from tests.faults.common import CLI_MODEL, assert_failed_in_one_line, write_scene


def test_a_second_run_to_the_same_output_fails_at_once_naming_the_first(tmp_path):
    from tests.faults.common import run_cli

    # Large enough that each run holds its lock for seconds: longer than two start-ups can differ by.
    src = write_scene(tmp_path / "scene.tif", 2048)
    out = tmp_path / "map.tif"
    runs = [run_cli("-q", "predict", src, "-o", out, *CLI_MODEL, "--overwrite", wait=False) for _ in range(2)]
    results = {run.pid: (run, *run.communicate(timeout=120)) for run in runs}
    winners = [pid for pid, (run, _, _) in results.items() if run.returncode == 0]
    assert len(winners) == 1, {pid: err for pid, (_, _, err) in results.items()}
    loser = next(run for pid, (run, _, _) in results.items() if pid != winners[0])
    _, stdout, stderr = results[loser.pid]
    loser.stdout, loser.stderr = stdout, stderr
    assert_failed_in_one_line(loser, str(out), f"pid {winners[0]}", codes=(1,))
    with rasterio.open(out) as dst:
        assert not np.any(dst.read(1) == 255), "every pixel of the scene is valid, so the map has no nodata"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.tif", "scene.tif"]
