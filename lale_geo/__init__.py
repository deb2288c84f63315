"""lale_geo: land-cover maps and polygons from large georeferenced rasters.

The public API is imported lazily, so that light entry points (``lale_geo.vectorize``, ``io``, ``tiling``)
do not pay for importing torch.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

from .vectorize import vectorize  # noqa: E402  (eager: the name would otherwise be the submodule)

_API = {
    "segment": "xarray_api", "predict": "pipeline",
    "create_model": "models", "list_models": "models",
    "load_weights": "weights", "random_weights": "weights", "list_weights": "weights",
    "stac_item": "stac", "write_stac_item": "stac",
}

__all__ = ["__version__", "vectorize", *_API]


def __getattr__(name: str):
    if name in _API:
        return getattr(importlib.import_module(f".{_API[name]}", __name__), name)
    raise AttributeError(f"module 'lale_geo' has no attribute {name!r}")
