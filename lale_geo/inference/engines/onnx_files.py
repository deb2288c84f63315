"""The network exported to ONNX once per weights and shape, for the ONNX engines (cached under
``~/.cache/lale_geo``, safe when several processes export at once)."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ...cache import cache_dir as default_cache_dir
from ...errors import LaleGeoError
from ...files import published
from ...weights import WeightsCard

if TYPE_CHECKING:
    from torch import nn

log = logging.getLogger(__name__)


def _available(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def weights_digest(model: nn.Module) -> str:
    """sha256 of the network's tensors: what identifies an export or a cached engine (not the card,
    which an in-memory model may share with other tensors). Computed every time (about 20 ms for
    LALE-S1): a model changed in place must never find the engine of its old weights."""
    from safetensors.torch import save

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    return hashlib.sha256(save(state)).hexdigest()


def export_onnx(model: nn.Module, card: WeightsCard, batch_size: int, tile_size: int,
                cache_dir: Path | None = None) -> Path:
    """The model exported to ONNX for one static (batch, bands, tile, tile) shape; cached by weights.

    Safe when several processes or threads export the same model at once: each writes its own
    temporary file and the rename into place is atomic (the last one wins with identical bytes)."""
    import torch

    cache_dir = cache_dir or default_cache_dir()
    digest = hashlib.sha256(weights_digest(model).encode())
    digest.update(f"{type(model).__qualname__}|{batch_size}|{len(card.bands)}|{tile_size}|{torch.__version__}".encode())
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
