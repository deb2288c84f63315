"""lale_geo: land-cover maps and polygons from large georeferenced rasters.

The public API is imported lazily, so that an entry point pays only for what it uses (``predict``
never imports geopandas, ``vectorize`` never imports torch); ``dir()`` and type checkers still see it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_API = {
    "vectorize": "polygons", "vectorize_to_file": "polygons", "VectorizeSummary": "polygons",
    "segment": "xarray_api", "predict": "pipeline", "plan": "pipeline", "PredictSummary": "pipeline",
    "Plan": "pipeline", "InferenceSettings": "settings",
    "adapt": "adaptation", "Recipe": "adaptation", "AdaptResult": "adaptation",
    "create_model": "models", "list_models": "models",
    "load_weights": "weights", "random_weights": "weights", "list_weights": "weights",
    "stac_item": "stac", "write_stac_item": "stac",
}

__all__ = [  # written out for linters and type checkers; the same names as _API (a test checks)
    "__version__", "AdaptResult", "InferenceSettings", "Plan", "PredictSummary", "Recipe", "VectorizeSummary",
    "adapt", "create_model", "list_models", "list_weights", "load_weights", "plan", "predict", "random_weights",
    "segment", "stac_item", "vectorize", "vectorize_to_file", "write_stac_item",
]

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time each name is imported on first use
    from .adaptation import AdaptResult, Recipe, adapt
    from .models import create_model, list_models
    from .pipeline import Plan, PredictSummary, plan, predict
    from .polygons import VectorizeSummary, vectorize, vectorize_to_file
    from .settings import InferenceSettings
    from .stac import stac_item, write_stac_item
    from .weights import list_weights, load_weights, random_weights
    from .xarray_api import segment


def __getattr__(name: str):
    if name in _API:
        return getattr(importlib.import_module(f".{_API[name]}", __name__), name)
    raise AttributeError(f"module 'lale_geo' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
