"""Eager PyTorch on any device."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ...io.scaling import Scale
from .base import normalise
from .devices import resolve_device

if TYPE_CHECKING:
    from torch import nn


class TorchEngine:
    """Eager PyTorch on any device: channels-last, inference mode, float16 autocast on CUDA."""

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float], device: str = "auto") -> None:
        import torch

        self.device = resolve_device(device)
        current = next(model.parameters(), torch.empty(0)).device
        if current != self.device:  # a model may be shared (cached weights): move a copy, not the original
            model = copy.deepcopy(model)
        self.model = model.eval().to(  # type: ignore[call-overload]  # torch's stubs lack Module.to's memory_format
            self.device, memory_format=torch.channels_last)
        self.num_classes: int = model.num_classes  # type: ignore[assignment]  # torch: attributes typed Tensor | Module
        self.mean, self.std = tuple(mean), tuple(std)
        self.name = f"torch-{self.device.type}"

    def __call__(self, tiles: np.ndarray, scale: Scale) -> np.ndarray:
        import torch

        with torch.inference_mode():
            x = torch.from_numpy(normalise(tiles, scale, self.mean, self.std)).to(self.device)
            x = x.contiguous(memory_format=torch.channels_last)
            if self.device.type == "cuda":
                with torch.autocast("cuda", dtype=torch.float16):
                    logits = self.model(x)
            else:
                logits = self.model(x)
            return logits.float().cpu().numpy()
