"""All-MLP multi-scale decoder, sized from an encoder's ``feature_info`` (any number of stages)."""

from __future__ import annotations

from typing import TypedDict

import torch
import torch.nn.functional as F
from torch import nn

from .layers import RMSNorm2d, StarReLU


class FeatureInfo(TypedDict):
    """One encoder output, as timm describes it: channels, stride and the module that gives it."""

    num_chs: int
    reduction: int
    module: str


class MLPDecoder(nn.Module):
    """Project every stage to ``dim`` channels, resize to the finest stage, concat, fuse, classify.

    Returns logits at the finest feature stride (stride 4 for LALE); the segmenter resizes them.
    """

    def __init__(self, feature_info: list[FeatureInfo], num_classes: int, dim: int = 128,
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.proj = nn.ModuleList(nn.Conv2d(f["num_chs"], dim, 1) for f in feature_info)
        n = len(feature_info)
        self.fuse = nn.Sequential(nn.Conv2d(n * dim, dim, 1, bias=False), RMSNorm2d(dim), StarReLU())
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(dim, num_classes, 1)
        self.stride = min(f["reduction"] for f in feature_info)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        size = features[0].shape[-2:]
        # each (B, C_i, h_i, w_i) -> (B, dim, h_1, w_1)
        maps = [F.interpolate(p(f), size=size, mode="bilinear", align_corners=False)
                if f.shape[-2:] != size else p(f) for p, f in zip(self.proj, features)]
        x = self.fuse(torch.cat(maps, dim=1))  # (B, n*dim, h_1, w_1) -> (B, dim, h_1, w_1)
        return self.classifier(self.dropout(x))
