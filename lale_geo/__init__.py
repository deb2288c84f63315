"""lale_geo: land-cover maps and polygons from large georeferenced rasters.

The public API is imported lazily, so that an entry point pays only for what it uses (``predict``
never imports geopandas, ``vectorize`` never imports torch); ``dir()`` and type checkers still see it.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_API = {
    "vectorize": "maps.polygons", "vectorize_to_file": "maps.vector_files", "VectorizeSummary": "maps.polygons",
    "segment": "inference.segment", "predict": "inference.predict", "plan": "inference.predict",
    "PredictSummary": "inference.predict", "Plan": "inference.predict", "InferenceSettings": "inference.settings",
    "adapt": "training.adaptation", "Recipe": "training.adaptation", "AdaptResult": "training.adaptation",
    "create_model": "models", "list_models": "models",
    "load_weights": "weights", "random_weights": "weights", "list_weights": "weights",
    "stac_item": "maps.stac", "write_stac_item": "maps.stac",
}

# Where the modules of the flat layout went (0.1): ``import lale_geo.settings`` still works for one release,
# with a DeprecationWarning naming the new place.
MOVED = {
    "raster": "io.raster",
    "scene_sample": "io.scene_sample",
    "scaling": "io.scaling",
    "band_files": "io.band_files",
    "classmap": "io.classmap",
    "writers": "io.writers",
    "overviews": "io.overviews",
    "outputs": "io.outputs",
    "settings": "inference.settings",
    "tiling": "inference.grid",
    "tiles": "inference.tile_loop",
    "stitching": "inference.stitching",
    "strips": "inference.strips",
    "column_maps": "inference.column_maps",
    "tta": "inference.tta",
    "domain": "inference.domain",
    "engines": "inference.engines",
    "onnx_models": "inference.onnx_models",
    "onnx_export": "inference.onnx_export",
    "pipeline": "inference.predict",
    "scenes": "inference.scenes",
    "cluster": "inference.cluster",
    "xarray_api": "inference.segment",
    "info": "maps.info",
    "preview": "maps.preview",
    "stac": "maps.stac",
    "polygons": "maps.polygons",
    "datasets": "training.datasets",
    "augment": "training.augment",
    "training": "training.trainer",
    "evaluation": "training.evaluation",
    "metrics": "training.metrics",
    "quantize": "training.quantize",
    "adaptation": "training.adaptation",
}

__all__ = [  # written out for linters and type checkers; the same names as _API (a test checks)
    "__version__", "AdaptResult", "InferenceSettings", "Plan", "PredictSummary", "Recipe", "VectorizeSummary",
    "adapt", "create_model", "list_models", "list_weights", "load_weights", "plan", "predict", "random_weights",
    "segment", "stac_item", "vectorize", "vectorize_to_file", "write_stac_item",
]

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time each name is imported on first use
    from .inference.predict import Plan, PredictSummary, plan, predict
    from .inference.segment import segment
    from .inference.settings import InferenceSettings
    from .maps.polygons import VectorizeSummary, vectorize
    from .maps.stac import stac_item, write_stac_item
    from .maps.vector_files import vectorize_to_file
    from .models import create_model, list_models
    from .training.adaptation import AdaptResult, Recipe, adapt
    from .weights import list_weights, load_weights, random_weights


def __getattr__(name: str):
    if name in _API:
        return getattr(importlib.import_module(f".{_API[name]}", __name__), name)
    raise AttributeError(f"module 'lale_geo' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``lale_geo.<old name>`` as the module at its new place (the same module object)."""

    def find_spec(self, fullname, path=None, target=None):
        prefix, _, name = fullname.partition(".")
        if prefix != __name__ or name not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec):
        new = f"{__name__}.{MOVED[spec.name.partition('.')[2]]}"
        warnings.warn(f"{spec.name} moved to {new}; import it from there (the old name goes in the next release)",
                      DeprecationWarning, stacklevel=2)
        return importlib.import_module(new)

    def exec_module(self, module) -> None:
        """Nothing to run: the module at its new place is already imported."""


sys.meta_path.append(_MovedModules())
