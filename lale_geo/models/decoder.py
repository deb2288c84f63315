"""All-MLP multi-scale decoder, sized from an encoder's ``feature_info`` (any number of stages)."""

from __future__ import annotations

from typing import TypedDict, cast

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

    # False: the paper's form, concat then fuse (the MAC count the paper publishes; the tests' reference)
    fold = True

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = self.fused(features) if self.fold else self.fuse[0](self.concatenated(features))
        return self.classifier(self.dropout(self.fuse[2](self.fuse[1](x))))

    def concatenated(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Every stage projected and resized to the finest stage, concatenated: (B, n*dim, h_1, w_1)."""
        size = features[0].shape[-2:]
        return torch.cat([F.interpolate(p(f), size=size, mode="bilinear", align_corners=False)
                          if f.shape[-2:] != size else p(f) for p, f in zip(self.proj, features)], dim=1)

    def fused(self, features: list[torch.Tensor]) -> torch.Tensor:
        """The fuse convolution's output, ``fuse[0](self.concatenated(features))``, computed without the concat.

        The fuse convolution is a per-pixel linear map, so it splits into one slice per stage, and each slice
        folds into that stage's projection (two linear maps make one). Bilinear resizing is linear with
        weights that sum to one, so it commutes with them, bias included. Each stage therefore runs one
        folded projection at its own resolution, and the (n*dim)-channel map at the finest stride is never
        built: the fuse convolution was 28 % of LALE-S1's time per tile (benchmarks/decoder_fold.py).
        Same parameters, same function; only float rounding differs."""
        size = features[0].shape[-2:]
        fuse = cast(nn.Conv2d, self.fuse[0])
        projections = cast(list[nn.Conv2d], list(self.proj))
        slices = fuse.weight.flatten(1).split(projections[0].out_channels, dim=1)
        x = None
        for p, f, w in zip(projections, features, slices):
            assert p.bias is not None  # the projections have biases (made in __init__)
            y = F.conv2d(f, (w @ p.weight.flatten(1))[:, :, None, None], w @ p.bias)
            if y.shape[-2:] != size:
                y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
            x = y if x is None else x + y
        assert x is not None  # at least one stage
        return x
