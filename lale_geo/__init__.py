"""lale_geo: land-cover maps and polygons from large georeferenced rasters.

The public API is imported lazily, so that an entry point pays only for what it uses (``predict``
never imports geopandas, ``vectorize`` never imports torch).
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_API = {
    "vectorize": "polygons",
    "segment": "xarray_api", "predict": "pipeline",
    "create_model": "models", "list_models": "models",
    "load_weights": "weights", "random_weights": "weights", "list_weights": "weights",
    "stac_item": "stac", "write_stac_item": "stac",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        return getattr(importlib.import_module(f".{_API[name]}", __name__), name)
    raise AttributeError(f"module 'lale_geo' has no attribute {name!r}")
