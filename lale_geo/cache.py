"""Where lale_geo keeps files it can rebuild: exported ONNX models, fetched STAC schemas."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$LALE_GEO_CACHE`` if set, else ``~/.cache/lale_geo``."""
    return Path(os.environ.get("LALE_GEO_CACHE", Path.home() / ".cache" / "lale_geo"))
