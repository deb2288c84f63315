"""Encoder + decoder -> per-pixel logits at the input size, for any input height and width."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from .decoder import FeatureInfo, MLPDecoder


class Encoder(Protocol):
    """What the segmenter needs of its encoder (a module: LALEEncoder, LeMeViTBackbone): feature maps, finest
    first, that ``feature_info`` describes."""

    feature_info: list[FeatureInfo]

    def __call__(self, x: torch.Tensor) -> list[torch.Tensor]: ...

    def modules(self) -> Iterator[nn.Module]: ...


class Segmenter(nn.Module):
    """Pads the input to a multiple of the encoder's deepest stride, crops the logits back.

    Replicate padding (not zeros) keeps padded borders looking like the image edge and works for
    inputs smaller than the pad.
    """

    def __init__(self, encoder: Encoder, decoder: MLPDecoder) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.size_multiple = max(f["reduction"] for f in encoder.feature_info)
        self.output_stride = decoder.stride
        self.num_classes = decoder.classifier.out_channels
        self.in_chans = next(m for m in encoder.modules() if isinstance(m, nn.Conv2d)).in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        H, W = x.shape[-2:]
        m = self.size_multiple
        pad_h, pad_w = (-H) % m, (-W) % m
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        logits = self.decoder(self.encoder(x))
        logits = F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return logits[..., :H, :W]
