import numpy as np
import rasterio
from click.testing import CliRunner

from lale_geo.cli.main import cli


def run(*args):
    return CliRunner().invoke(cli, list(map(str, args)))


def test_predict_with_random_weights_writes_a_stamped_map_and_a_summary(rasterio_fixtures, tmp_path):
    out = tmp_path / "lc.tif"
    result = run("predict", rasterio_fixtures / "RGB.byte.tif", "-o", out, "--random-weights", "lale_s1",
                 "--tile-size", "256", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.output and "nodata" in result.output and "ha" in result.output
    with rasterio.open(out) as dst:
        assert dst.tags()["LALE_GEO_UNTRAINED"] == "yes" and dst.tags()["LALE_GEO_OVERLAP"] == "64"
        labels = dst.read(1)
    counts = {line.split()[0] + " " + line.split()[1]: int(line.split()[2])
              for line in result.output.splitlines() if line.strip().startswith("class ")}
    assert counts == {f"class {i}": int((labels == i).sum()) for i in range(5)}


def test_refuses_to_overwrite_and_keeps_the_file(rasterio_fixtures, tmp_path):
    out = tmp_path / "lc.tif"
    out.write_bytes(b"mine")
    result = run("predict", rasterio_fixtures / "RGB.byte.tif", "-o", out, "--random-weights", "lale_s1")
    assert result.exit_code == 1 and "--overwrite" in result.output and "Traceback" not in result.output
    assert out.read_bytes() == b"mine"


def test_bad_inputs_are_one_line_errors(rasterio_fixtures, tmp_path):
    cases = [
        (rasterio_fixtures / "shade.tif", [], "1 data band"),
        (rasterio_fixtures / "corrupt.tif", ["--tile-size", "256"], "corrupt"),
        (tmp_path / "missing.tif", [], "file not found"),
        (rasterio_fixtures / "README.rst", [], "not a readable raster"),
        (rasterio_fixtures / "RGB.byte.tif", ["--bands", "1,2,9"], "has 3"),
    ]
    for src, extra, message in cases:
        result = run("predict", src, "-o", tmp_path / "o.tif", "--random-weights", "lale_s1", "--device", "cpu",
                     *extra)
        assert result.exit_code == 1, (src, result.output)
        assert message in result.output and len(result.output.strip().splitlines()) == 1, result.output
        assert not (tmp_path / "o.tif").exists()


def test_usage_errors_exit_2(rasterio_fixtures, tmp_path):
    result = run("predict", rasterio_fixtures / "RGB.byte.tif", "-o", tmp_path / "o.tif", "--bands", "a,b")
    assert result.exit_code == 2 and "comma-separated" in result.output


def test_probabilities_and_confidence_outputs(rasterio_fixtures, tmp_path):
    result = run("predict", rasterio_fixtures / "RGBA.byte.tif", "-o", tmp_path / "lc.tif", "--random-weights",
                 "lale_s1", "--probabilities", tmp_path / "p.tif", "--confidence", tmp_path / "c.tif",
                 "--tile-size", "256", "--device", "cpu")
    assert result.exit_code == 0, result.output
    with rasterio.open(tmp_path / "p.tif") as p, rasterio.open(tmp_path / "c.tif") as c, \
            rasterio.open(tmp_path / "lc.tif") as lc:
        probs, conf, labels = p.read(), c.read(1), lc.read(1)
    valid = labels != 255
    assert probs.shape[0] == 5 and (conf[~valid] == 255).all() and (probs[:, ~valid] == 255).all()
    assert np.abs(probs[:, valid].astype(int).sum(0) - 100).max() <= 3
    assert (conf[valid] >= 20).all()  # the top of 5 probabilities is at least 1/5
