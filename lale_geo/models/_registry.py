"""Model registry: names -> factory functions.

A variant is registered by decorating a small factory; ``create_model`` is the one way in.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from ..errors import UnknownModelError

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register ``factory`` under its function name (decorator)."""
    name = factory.__name__
    if name in _MODELS:
        raise ValueError(f"model {name!r} is already registered")
    _MODELS[name] = factory
    return factory


def list_models() -> list[str]:
    """Names of every registered model, sorted."""
    return sorted(_MODELS)


def create_model(name: str, num_classes: int = 7, in_chans: int = 3, **kwargs) -> nn.Module:
    """Build a registered segmentation model with random weights.

    Example:
        >>> model = create_model("lale_s1", num_classes=5)
    """
    try:
        factory = _MODELS[name]
    except KeyError:
        known = ", ".join(list_models())
        raise UnknownModelError(f"unknown model {name!r}; known models: {known}") from None
    return factory(num_classes=num_classes, in_chans=in_chans, **kwargs)
