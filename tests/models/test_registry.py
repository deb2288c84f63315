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
