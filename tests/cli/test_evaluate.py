import json

import pytest
from click.testing import CliRunner

from lale_geo.cli.main import cli


@pytest.mark.slow
def test_evaluate_reports_uncertainty_and_grid_agreement_on_the_real_validation_split(dubai):
    result = CliRunner().invoke(cli, ["evaluate", "--data", str(dubai), "--split", "val", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["tile_size"] == 256 and report["overlap"] == 64 and report["images"] == 18
    low, high = report["macro_f1_ci95"]
    assert low < report["macro_f1"] < high
    assert len(report["per_image"]) == 18 and report["per_tile"]["tiles"] > 100
    agreement = report["agreement"]
    assert 0.8 < agreement["tiled_vs_untiled"] <= 1 and 0.8 < agreement["shifted_grid"] <= 1
