"""lale_geo: land-cover maps and polygons from large georeferenced rasters."""

__version__ = "0.1.0"

from .models import create_model, list_models  # noqa: E402
from .weights import load_weights  # noqa: E402

__all__ = ["__version__", "create_model", "list_models", "load_weights"]
