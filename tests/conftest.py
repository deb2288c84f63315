"""Shared fixtures: paths to the real data in ../shared (tests skip with a reason when it is absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"
FIXTURES = SHARED / "fixtures"
DUBAI = SHARED / "data" / "dubai-aerial"


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real data not available: {path} (see DESIGN.md §5)")
    return path


@pytest.fixture
def rasterio_fixtures() -> Path:
    return need(FIXTURES / "rasterio")


@pytest.fixture
def dubai() -> Path:
    return need(DUBAI)


@pytest.fixture(autouse=True, scope="session")
def onnx_cache(tmp_path_factory):
    """Exported ONNX models and fetched STAC schemas go to a per-session folder, not the user's cache."""
    import os

    os.environ["LALE_GEO_CACHE"] = str(tmp_path_factory.mktemp("lale_geo_cache"))
