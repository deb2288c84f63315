import subprocess
import sys

import pytest


def command(src, out, *extra):
    return [sys.executable, "-m", "lale_geo.cli.main", "-q", "predict", str(src), "-o", str(out), "--random-weights",
            "lale_s1", "--tile-size", "128", "--batch-size", "2", "--engine", "torch", "--device", "cpu", *extra]


@pytest.mark.parametrize("sig", ["SIGKILL", "SIGINT"])
def test_resume_after_a_kill_gives_a_byte_identical_map(rasterio_fixtures, tmp_path, sig):
    src = rasterio_fixtures / "RGB.byte.tif"
    reference = tmp_path / "ref" / "map.tif"
    reference.parent.mkdir()
    subprocess.run(command(src, reference), check=True, timeout=600)

    out = tmp_path / "run" / "map.tif"
    out.parent.mkdir()
    # the signal comes after 6 tiles (of 64): some rows, not all, are finished
    killed = subprocess.run([sys.executable, "-m", "tests.faults.interrupt_at", sig, "6",
                             *command(src, out, "--probabilities", out.with_name("p.tif"))[3:]], timeout=600)
    assert killed.returncode == (-9 if sig == "SIGKILL" else 130)
    assert not out.exists(), "an interrupted run must leave nothing under the target name"
    assert list(out.parent.glob(".map.tif.*.part.tif")), "the partial output is kept for --resume"

    subprocess.run(command(src, out, "--probabilities", out.with_name("p.tif"), "--resume"), check=True, timeout=600)
    assert out.read_bytes() == reference.read_bytes()
    assert sorted(p.name for p in out.parent.iterdir()) == ["map.tif", "p.tif"]  # temporaries cleaned up
