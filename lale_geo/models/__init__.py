"""Segmentation networks (pure torch): the LALE family, one registry."""

from . import lale, lemevit, reference  # noqa: F401  (register their variants)
from ._registry import create_model, list_models, register_model
from .flops import count_macs, count_params

__all__ = ["create_model", "list_models", "register_model", "count_macs", "count_params"]
