"""Segmentation networks (pure torch): the LALE family, one registry.

Importing this package does not import torch: the built-in variants are known by name and their modules
load when a model is first created (see ``_registry``).
"""

from __future__ import annotations

import importlib

from ._registry import create_model, list_models, register_model

__all__ = ["create_model", "list_models", "register_model", "count_macs", "count_params"]


def __getattr__(name: str):
    if name in ("count_macs", "count_params"):
        return getattr(importlib.import_module(".flops", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
