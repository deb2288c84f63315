"""Reference models from other libraries, for fair comparisons (benchmarks, baseline training).

``segformer_b0``: transformers' SegformerForSemanticSegmentation with the MiT-B0 configuration, random
init. transformers is optional (``pip install 'lale_geo[bench]'``): the factory says so when it is missing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import LaleGeoError
from ._registry import register_model


class HFSegformer(nn.Module):
    """Adapts a transformers SegFormer to the Segmenter contract: logits at the input size, any size."""

    output_stride = 4
    size_multiple = 32

    def __init__(self, num_classes: int, in_chans: int) -> None:
        super().__init__()
        try:
            from transformers import SegformerConfig, SegformerForSemanticSegmentation
        except ImportError:
            raise LaleGeoError("segformer_b0 needs transformers: pip install 'lale_geo[bench]'") from None
        config = SegformerConfig(num_labels=num_classes, num_channels=in_chans)  # defaults = MiT-B0
        self.net = SegformerForSemanticSegmentation(config)
        self.num_classes, self.in_chans = num_classes, in_chans

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        H, W = x.shape[-2:]
        pad_h, pad_w = (-H) % self.size_multiple, (-W) % self.size_multiple
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        logits = self.net(pixel_values=x).logits  # (B, classes, H/4, W/4)
        logits = F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return logits[..., :H, :W]


@register_model
def segformer_b0(num_classes: int = 7, in_chans: int = 3) -> HFSegformer:
    """SegFormer-B0 reference (transformers, MiT-B0 config)."""
    return HFSegformer(num_classes, in_chans)
