"""Model registry: names -> factory functions.

A variant is registered by decorating a small factory; ``create_model`` is the one way in.

The built-in variants are known by name before their modules are imported (``_BUILT_IN``): a weights
card can be checked, and an INT8 OpenVINO run can go ahead, without importing torch (most of a
run's start-up). Their module is imported, and registers them, the first time one is created.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import UnknownModelError

if TYPE_CHECKING:
    from torch import nn

# Built-in variant -> the module of lale_geo.models that registers it (tests check that they agree).
_BUILT_IN = {
    "lale_s1": "lale", "lale_s2": "lale", "lale_s3": "lale", "lale_s4": "lale",
    "lemevit_tiny": "lemevit", "lemevit_small": "lemevit", "lemevit_base": "lemevit",
    "segformer_b0": "reference",
}
_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register ``factory`` under its function name (decorator)."""
    name = factory.__name__
    built_in_here = factory.__module__ == f"{__package__}.{_BUILT_IN.get(name)}"
    if name in _MODELS or (name in _BUILT_IN and not built_in_here):
        raise ValueError(f"model {name!r} is already registered")
    _MODELS[name] = factory
    return factory


def list_models() -> list[str]:
    """Names of every registered model, sorted (built-in ones whether or not their module is imported)."""
    return sorted(_MODELS.keys() | _BUILT_IN.keys())


def create_model(name: str, num_classes: int = 7, in_chans: int = 3, **kwargs) -> nn.Module:
    """Build a registered segmentation model with random weights.

    Example:
        >>> model = create_model("lale_s1", num_classes=5)
    """
    if name not in _MODELS and name in _BUILT_IN:
        importlib.import_module(f"{__package__}.{_BUILT_IN[name]}")
    try:
        factory = _MODELS[name]
    except KeyError:
        known = ", ".join(list_models())
        raise UnknownModelError(f"unknown model {name!r}; known models: {known}") from None
    return factory(num_classes=num_classes, in_chans=in_chans, **kwargs)
