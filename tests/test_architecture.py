"""The package's shape: sub-packages by stage that import one way (io <- inference <- maps, training; the
base modules import none of them), no import cycle, small signatures, one job per module, io/ and maps/
without torch, the models without geospatial code, light commands that never import torch, and every
package listed for the wheel."""

import ast
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "lale_geo"


def _modules() -> dict[str, Path]:
    return {".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__"): p
            for p in PACKAGE.rglob("*.py")}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Package modules that ``name`` imports, at module level or inside functions."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                target = f"{base}.{alias.name}"
                found.add(target if target in known else base)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m in known and m != name}


def test_the_package_has_no_import_cycle():
    modules = _modules()
    graph = {name: _imports(name, path, set(modules)) for name, path in modules.items()}
    graph["lale_geo"] = set()  # the package root only re-exports lazily (by name, see __init__)
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                pytest.fail("import cycle: " + " -> ".join(stack[stack.index(nxt):] + [node, nxt]))
            if nxt not in state:
                visit(nxt, stack + [node])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [])


def test_no_function_outside_the_cli_takes_more_than_ten_parameters():
    too_many = []
    for name, path in _modules().items():
        if ".cli" in name:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                args = node.args
                count = len(args.posonlyargs + args.args + args.kwonlyargs) + bool(args.vararg)
                count -= bool(args.args and args.args[0].arg in ("self", "cls"))
                if count > 10:
                    too_many.append(f"{name}.{node.name} ({count})")
    assert not too_many, too_many


def test_every_module_opens_with_a_docstring():
    missing = [name for name, path in _modules().items()
               if path.stat().st_size and not ast.get_docstring(ast.parse(path.read_text()))]
    assert not missing, missing


BASE = {"lale_geo", "lale_geo.errors", "lale_geo.files", "lale_geo.weights", "lale_geo.checksums", "lale_geo.cache"}
# what each part of the package may import besides itself and the base (models: the networks, no I/O)
MAY_IMPORT = {
    "io": set(),
    "inference": {"io", "models"},
    "maps": {"io"},
    "training": {"io", "inference", "models"},
    "models": set(),
    "cli": {"io", "inference", "maps", "training", "models"},
}


def _part(module: str) -> str:
    parts = module.split(".")
    return "base" if module in BASE else parts[1]


def test_the_packages_import_one_way():
    modules = _modules()
    wrong = []
    for name, path in modules.items():
        part = _part(name)
        for target in _imports(name, path, set(modules)):
            other = _part(target)
            if other in ("base", part) or (part == "base" and name == "lale_geo"):
                continue
            if part == "base" and other == "models" and name == "lale_geo.weights":
                continue  # a card names its network: the registry (pure torch)
            if other not in MAY_IMPORT.get(part, set()):
                wrong.append(f"{name} -> {target}")
    assert not wrong, wrong


def test_io_and_maps_import_no_torch_and_the_models_no_geospatial_code():
    for part in ("io", "maps"):
        for path in (PACKAGE / part).glob("*.py"):
            assert "torch" not in _top_level_imports(path), path
    for path in (PACKAGE / "models").glob("*.py"):
        assert not {"rasterio", "xarray", "rioxarray"} & _top_level_imports(path), path.name


def test_every_package_is_in_the_wheel():
    import tomllib

    listed = set(tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    packages = {".".join(p.parent.relative_to(PACKAGE.parent).parts) for p in PACKAGE.rglob("__init__.py")}
    assert packages <= listed, sorted(packages - listed)


def test_the_old_flat_names_still_import_for_one_release():
    import lale_geo

    for old, new in lale_geo.MOVED.items():
        module = PACKAGE / new.replace(".", "/")
        assert module.with_suffix(".py").is_file() or (module / "__init__.py").is_file(), new
        assert not (PACKAGE / f"{old}.py").exists(), old
    code = ("import warnings; warnings.simplefilter('error')\n"
            "try:\n    import lale_geo.settings\nexcept DeprecationWarning as e:\n    print(e)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "lale_geo.settings moved to lale_geo.inference.settings" in result.stdout, result.stderr
    with pytest.warns(DeprecationWarning):
        import lale_geo.tiling  # noqa: F401
    assert sys.modules["lale_geo.tiling"] is sys.modules["lale_geo.inference.grid"]  # the same module


def _top_level_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("argv", [["--help"], ["info", "{map}"], ["info", "{map}", "--json"], ["predict", "--help"]])
def test_light_commands_do_not_import_torch(tmp_path, argv):
    import numpy as np
    import rasterio

    path = tmp_path / "map.tif"
    with rasterio.open(path, "w", driver="GTiff", width=4, height=3, count=1, dtype="uint8", nodata=255,
                       crs="EPSG:32633", transform=rasterio.transform.from_origin(0, 30, 10, 10)) as dst:
        dst.write(np.array([[0, 1, 1, 255]] * 3, np.uint8), 1)
    argv = [a.format(map=path) for a in argv]
    code = ("import sys; from lale_geo.cli.main import cli\n"
            f"try:\n    cli({argv!r})\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "NO-TORCH"


def test_signatures_of_the_public_api_stay_small():
    from lale_geo.inference.predict import plan, predict
    from lale_geo.inference.segment import segment

    for function in (predict, plan, segment):
        assert len(inspect.signature(function).parameters) <= 11  # ten named, plus **options (settings fields)


def test_the_help_summaries_are_the_commands_own():
    import importlib

    from lale_geo.cli.main import COMMANDS

    for name, (module, summary) in COMMANDS.items():
        command = importlib.import_module(f"lale_geo.cli.{module}").command
        assert command.name == name and command.get_short_help_str(limit=200) == summary


def test_predict_does_not_import_geopandas_and_vectorize_stays_the_function():
    code = ("import sys, lale_geo.cli.predict, lale_geo.inference.predict\n"
            "assert 'geopandas' not in sys.modules, 'predict imported geopandas'\n"
            "assert 'pystac' not in sys.modules, 'predict imported pystac (needed for --stac only)'\n"
            "import lale_geo, lale_geo.maps.polygons\n"  # importing the module must not shadow the function
            "assert lale_geo.vectorize is lale_geo.maps.polygons.vectorize\n"
            "print('ok')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_the_public_api_is_visible_to_dir_and_type_checkers():
    import importlib

    import lale_geo

    assert sorted(lale_geo.__all__) == sorted(["__version__", *lale_geo._API])
    assert set(dir(lale_geo)) == set(lale_geo.__all__)
    for name in lale_geo._API:  # each name resolves to the object its module defines
        assert getattr(lale_geo, name) is getattr(importlib.import_module(f"lale_geo.{lale_geo._API[name]}"), name)
    source = (Path(lale_geo.__file__).parent / "__init__.py").read_text()
    for name in lale_geo._API:  # and the TYPE_CHECKING block imports it for type checkers
        assert f" {name}" in source.split("if TYPE_CHECKING:")[1].split("def __getattr__")[0], name
    assert (Path(lale_geo.__file__).parent / "py.typed").is_file()


def test_names_that_moved_between_modules_still_import_for_one_release(tmp_path):
    import numpy as np

    from lale_geo.checksums import tensors_sha256
    from lale_geo.inference.engines import weights_digest
    from lale_geo.io.scaling import Scale, fill_values
    from lale_geo.maps import polygons, vector_files
    from lale_geo.training import datasets, worldcover

    with pytest.warns(DeprecationWarning, match="polygons.vectorize_to_file moved to lale_geo.maps.vector_files"):
        assert polygons.vectorize_to_file is vector_files.vectorize_to_file
    with pytest.raises(AttributeError):
        polygons.no_such_name  # noqa: B018
    assert datasets.remap_worldcover is worldcover.remap_worldcover and weights_digest is tensors_sha256
    assert fill_values((0, 255), (0.5, 0.5, 0.5)) == Scale.of(0, 255).fill((0.5, 0.5, 0.5)) == [127.5] * 3
    import rasterio

    from lale_geo.io.raster import lazy_dataset_mask

    with rasterio.open(tmp_path / "m.tif", "w", driver="GTiff", width=5, height=4, count=1, dtype="uint8",
                       nodata=0) as dst:
        dst.write(np.array([[0, 1, 1, 1, 1]] * 4, np.uint8), 1)
    np.testing.assert_array_equal(lazy_dataset_mask(tmp_path / "m.tif").compute()[:, 0], [False] * 4)
