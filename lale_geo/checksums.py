"""Checksums of files and of a network's tensors (no heavy imports: the STAC writer uses them without
loading torch)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn


def sha256_of(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def tensors_sha256(model: nn.Module) -> str:
    """sha256 of the network's tensors as safetensors bytes: what identifies a network (a random one's card,
    an ONNX export, a cached engine) whatever card goes with it. Computed every time (about 20 ms for
    LALE-S1): a model changed in place must never find the engine of its old weights."""
    from safetensors.torch import save

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    return hashlib.sha256(save(state)).hexdigest()
