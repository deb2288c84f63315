import pytest
from torch import nn

from lale_geo.errors import LaleGeoError, UnknownModelError
from lale_geo.models import create_model, list_models, register_model


def test_list_models_has_the_lale_family_sorted():
    names = list_models()
    assert {"lale_s1", "lale_s2", "lale_s3", "lale_s4"} <= set(names)
    assert names == sorted(names)


def test_unknown_model_error_lists_known_names():
    with pytest.raises(UnknownModelError) as info:
        create_model("lale_s9")
    message = str(info.value)
    assert "lale_s9" in message and "lale_s1" in message and "lale_s4" in message
    assert isinstance(info.value, LaleGeoError) and isinstance(info.value, ValueError)


def test_create_model_passes_classes_and_bands():
    model = create_model("lale_s1", num_classes=5, in_chans=4)
    assert model.num_classes == 5 and model.in_chans == 4


def test_register_twice_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        @register_model
        def lale_s1(**kwargs) -> nn.Module:  # noqa: F811
            return nn.Identity()


def test_the_built_in_names_are_the_ones_their_modules_register():
    # list_models() answers from the built-in table without importing torch; it must not drift
    import importlib

    from lale_geo.models import _registry

    for module in set(_registry._BUILT_IN.values()):
        importlib.import_module(f"lale_geo.models.{module}")
    registered = {name: factory.__module__.rsplit(".", 1)[1] for name, factory in _registry._MODELS.items()
                  if factory.__module__.startswith("lale_geo.models.")}
    assert registered == _registry._BUILT_IN


def test_the_models_package_and_its_names_need_no_torch():
    import subprocess
    import sys

    code = ("import sys, lale_geo.models as m, lale_geo.weights as w\n"
            "names = m.list_models(); card = w.load_card(w.DEFAULT_WEIGHTS)\n"
            "print('lale_s1' in names, 'torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.split() == ["True", "False"], result.stderr[-1000:]
