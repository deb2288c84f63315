import json

from click.testing import CliRunner

from lale_geo import __version__
from lale_geo.cli.main import cli
from lale_geo.models import list_models


def test_version():
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output


def test_models_table_lists_every_model_with_counts():
    result = CliRunner().invoke(cli, ["models"])
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line.split() for line in result.output.splitlines() if line.strip()}
    for name in ("lale_s1", "lale_s2", "lale_s3", "lale_s4"):
        assert name in lines
    params, g256, g512 = map(float, lines["lale_s1"][1:4])
    assert abs(params - 1.58) < 0.05 and abs(g256 - 0.60) < 0.05 and abs(g512 - 2.93) < 0.1


def test_models_json_is_machine_readable():
    result = CliRunner().invoke(cli, ["models", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    rows = {r["name"]: r for r in data["models"]}
    assert set(rows) == set(list_models())
    assert rows["lale_s2"]["output_stride"] == 4 and rows["lale_s2"]["size_multiple"] == 32
    assert rows["lale_s2"]["gmacs_512"] > 4 * rows["lale_s2"]["gmacs_256"]


def test_library_errors_are_one_line_with_exit_code_1(tmp_path):
    result = CliRunner().invoke(cli, ["evaluate", "--weights", str(tmp_path / "none.safetensors"),
                                      "--data", str(tmp_path)])
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and "none.safetensors" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_usage_errors_exit_2():
    result = CliRunner().invoke(cli, ["models", "--num-classes", "0"])
    assert result.exit_code == 2


def test_models_lists_benchmark_references_apart_from_the_users_models():
    from click.testing import CliRunner

    from lale_geo.cli.main import cli

    result = CliRunner().invoke(cli, ["models"])
    assert result.exit_code == 0, result.output
    table, _, rest = result.output.partition("benchmark references")
    assert "lale_s1" in table and "segformer_b0" not in table
    if "segformer_b0" in result.output:  # only listed when its extra is missing
        assert "segformer_b0" in rest
