"""The network exported to ONNX once per weights and shape, for the ONNX engines (cached under
``~/.cache/lale_geo``, safe when several processes export at once)."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ...cache import cache_dir as default_cache_dir
from ...checksums import tensors_sha256
from ...errors import LaleGeoError
from ...files import published
from ...weights import WeightsCard

if TYPE_CHECKING:
    from torch import nn

log = logging.getLogger(__name__)


def _available(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def export_onnx(model: nn.Module, card: WeightsCard, batch_size: int, tile_size: int,
                cache_dir: Path | None = None) -> Path:
    """The model exported to ONNX for one static (batch, bands, tile, tile) shape; cached by weights.

    Safe when several processes or threads export the same model at once: each writes its own
    temporary file and the rename into place is atomic (the last one wins with identical bytes)."""
    import torch

    cache_dir = cache_dir or default_cache_dir()
    digest = hashlib.sha256(tensors_sha256(model).encode())
    digest.update(f"{type(model).__qualname__}|{batch_size}|{len(card.bands)}|{tile_size}|{torch.__version__}".encode())
    digest.update(_models_source())  # a changed forward (a faster graph) is exported anew
    digest.update(repr(getattr(getattr(model, "decoder", None), "fold", None)).encode())  # the papers' form or not
    path = cache_dir / "onnx" / f"{card.model}-{digest.hexdigest()[:20]}.onnx"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    if not _available("onnxscript"):
        raise LaleGeoError("ONNX export needs onnxscript: pip install onnxscript (or use engine='torch')")
    dummy = torch.zeros(batch_size, len(card.bands), tile_size, tile_size)
    log.info("exporting %s to ONNX (%s)", card.model, path)
    with quiet_exporter(), published(path, overwrite=True) as tmp:
        torch.onnx.export(model.eval().cpu(), (dummy,), str(tmp), dynamo=True, verbose=False, external_data=False)
    return path


@functools.cache
def _models_source() -> bytes:
    """The networks' code, which decides the exported graph as much as the weights do."""
    folder = Path(__file__).resolve().parents[2] / "models"
    return hashlib.sha256(b"".join(p.read_bytes() for p in sorted(folder.glob("*.py")))).digest()


@contextlib.contextmanager
def quiet_exporter() -> Iterator[None]:
    """``torch.onnx.export`` without its chatter (warnings, and log lines about torchvision ops we do not use)."""
    onnx_log = logging.getLogger("torch.onnx")
    level = onnx_log.level
    onnx_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        onnx_log.setLevel(level)
