"""Run a model on batches of tiles: normalisation per card, device, AMP, channels-last (no file I/O)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from .errors import InvalidInputError


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then MPS, then the CPU; ``cpu``, ``cuda``, ``cuda:N`` and ``mps`` are taken as given."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise InvalidInputError(f"unknown device {device!r}: use auto, cpu, cuda, cuda:N or mps") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError(f"device {device!r} asked for but CUDA is not available here")
    return resolved


class TilePredictor:
    """Normalises raw tiles (``mean``/``std`` of the weights card) and returns logits, batch by batch.

    Scaling is decided once per scene by the caller (``scale=(lo, hi)``: raw values mapped to [0, 1]),
    never per tile, so neighbouring tiles see the same transform.
    """

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float],
                 device: str = "auto") -> None:
        self.device = resolve_device(device)
        self.model = model.eval().to(self.device, memory_format=torch.channels_last)
        self.num_classes: int = model.num_classes
        self.mean = tuple(float(m) for m in mean)
        self._mean = torch.tensor(mean, device=self.device, dtype=torch.float32).view(1, -1, 1, 1)
        self._std = torch.tensor(std, device=self.device, dtype=torch.float32).view(1, -1, 1, 1)

    def normalise(self, tiles: np.ndarray, scale: tuple) -> torch.Tensor:
        """(B, C, H, W) raw values -> normalised float32 tensor on the device.

        ``scale`` is (low, high), each a number or one value per band.
        """
        lo, hi = (torch.as_tensor(np.asarray(v, np.float32), device=self.device).reshape(1, -1, 1, 1)
                  for v in scale)
        x = torch.from_numpy(np.ascontiguousarray(tiles)).to(self.device).float()
        x = ((x - lo) / (hi - lo)).clamp_(0.0, 1.0)
        return ((x - self._mean) / self._std).contiguous(memory_format=torch.channels_last)

    @torch.inference_mode()
    def __call__(self, tiles: np.ndarray, scale: tuple) -> np.ndarray:
        """Logits (B, classes, H, W) float32 of a batch of raw (B, bands, H, W) tiles."""
        x = self.normalise(tiles, scale)
        if self.device.type == "cuda":
            with torch.autocast("cuda", dtype=torch.float16):
                logits = self.model(x)
        else:
            logits = self.model(x)
        return logits.float().cpu().numpy()
