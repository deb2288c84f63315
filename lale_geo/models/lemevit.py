"""LeMeViT (Jiang et al., IJCAI 2024): learnable meta tokens and dual cross-attention (spec/lemevit.md).

Implemented from the spec only (the upstream code has no licence). Stage types C, D, D, S, S: a
cross-attention block initialises 16 meta tokens from the image; dual cross-attention (image <-> meta
tokens, linear in the number of image tokens) runs at strides 4 and 8; standard self-attention at 16
and 32. The dense backbone feeds the same all-MLP decoder as LALE.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ._registry import register_model
from .decoder import FeatureInfo, MLPDecoder
from .segmenter import Segmenter

NUM_META = 16
HEAD_DIM = 32


@dataclass(frozen=True)
class LeMeViTConfig:
    widths: tuple[int, int, int, int, int]  # stages 0..4 (stage 0 == stage 1)
    depths: tuple[int, int, int, int, int]


VARIANTS = {
    "tiny": LeMeViTConfig((64, 64, 128, 192, 320), (1, 2, 2, 8, 2)),
    "small": LeMeViTConfig((96, 96, 192, 320, 384), (1, 2, 2, 6, 2)),
    "base": LeMeViTConfig((96, 96, 192, 384, 512), (2, 4, 4, 18, 4)),
}
STAGE_TYPES = ("C", "D", "D", "S", "S")


def _heads(t: torch.Tensor, heads: int) -> torch.Tensor:
    """(B, N, heads * 32) -> (B, heads, N, 32)."""
    B, N, _ = t.shape
    return t.reshape(B, N, heads, -1).transpose(1, 2)


def _merge(t: torch.Tensor) -> torch.Tensor:
    """(B, heads, N, 32) -> (B, N, heads * 32)."""
    B, H, N, D = t.shape
    return t.transpose(1, 2).reshape(B, N, H * D)


class Mlp(nn.Sequential):
    def __init__(self, dim: int, ratio: int = 4) -> None:
        super().__init__(nn.Linear(dim, ratio * dim), nn.GELU(), nn.Linear(ratio * dim, dim))


class MetaTransition(nn.Sequential):
    """Meta tokens change width only here: Linear -> LN -> GELU -> Linear -> LN."""

    def __init__(self, dim_in: int, dim_out: int) -> None:
        super().__init__(nn.Linear(dim_in, 4 * dim_in), nn.LayerNorm(4 * dim_in), nn.GELU(),
                         nn.Linear(4 * dim_in, dim_out), nn.LayerNorm(dim_out))


class _Block(nn.Module):
    """Pieces every block has: residual depthwise-conv positional encoding, two norms, one MLP."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.heads = dim // HEAD_DIM
        self.cpe = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> x + CPE(x) as (B, H*W, C)."""
        return (x + self.cpe(x)).flatten(2).transpose(1, 2)


class CrossAttentionBlock(_Block):
    """Type C: the meta tokens read the image (queries from meta, keys/values from the image);
    the image tokens leave unchanged."""

    def __init__(self, dim: int) -> None:
        super().__init__(dim)
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t = self.norm1(self.tokens(x))
        q = _heads(self.q(self.norm1(c)), self.heads)
        k, v = (_heads(part, self.heads) for part in self.kv(t).chunk(2, dim=-1))
        c = c + self.proj(_merge(F.scaled_dot_product_attention(q, k, v)))
        return x, c + self.mlp(self.norm2(c))


class DualCrossAttentionBlock(_Block):
    """Type D: image tokens attend to meta tokens and meta tokens to image tokens, in parallel from the
    same inputs; cost O(N * M * d). Scales as upstream: d^-0.5 with the full width d, the image branch
    further times log_N(M), recomputed from the actual token count N."""

    def __init__(self, dim: int) -> None:
        super().__init__(dim)
        self.qkv_x = nn.Linear(dim, 3 * dim)
        self.qkv_c = nn.Linear(dim, 3 * dim)
        self.proj_x = nn.Linear(dim, dim)
        self.proj_c = nn.Linear(dim, dim)

    @staticmethod
    def scales(dim: int, num_image: int, num_meta: int) -> tuple[float, float]:
        """(image-branch scale, meta-branch scale) for ``num_image`` >= 2 image tokens."""
        base = dim**-0.5
        return math.log(num_meta) / math.log(num_image) * base, base

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, C, H, W = x.shape
        t = self.tokens(x)
        q1, k1, v1 = (_heads(p, self.heads) for p in self.qkv_x(self.norm1(t)).chunk(3, dim=-1))
        q2, k2, v2 = (_heads(p, self.heads) for p in self.qkv_c(self.norm1(c)).chunk(3, dim=-1))
        s_x, s_c = self.scales(C, H * W, c.shape[1])
        x_att = self.proj_x(_merge(F.scaled_dot_product_attention(q1, k2, v2, scale=s_x)))  # (B, N, C)
        c_att = self.proj_c(_merge(F.scaled_dot_product_attention(q2, k1, v1, scale=s_c)))  # (B, M, C)
        t = t + x_att
        t = t + self.mlp(self.norm2(t))
        c = c + c_att
        c = c + self.mlp(self.norm2(c))
        return t.transpose(1, 2).reshape(B, C, H, W), c


class SelfAttentionBlock(_Block):
    """Type S: global multi-head self-attention over the image tokens. With ``meta=True`` (the
    classification model) the same block also runs on the meta tokens on their own."""

    def __init__(self, dim: int, meta: bool = False) -> None:
        super().__init__(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.meta = meta

    def _attend(self, t: torch.Tensor) -> torch.Tensor:
        q, k, v = (_heads(p, self.heads) for p in self.qkv(self.norm1(t)).chunk(3, dim=-1))
        t = t + self.proj(_merge(F.scaled_dot_product_attention(q, k, v)))
        return t + self.mlp(self.norm2(t))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, C, H, W = x.shape
        x = self._attend(self.tokens(x)).transpose(1, 2).reshape(B, C, H, W)
        return x, (self._attend(c) if self.meta else c)


def _conv_bn(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.BatchNorm2d(cout)]


class LeMeViTBackbone(nn.Module):
    """Dense LeMeViT backbone: image maps after stages 1-4 (strides 4, 8, 16, 32).

    With ``classification=True`` meta tokens also flow through the S stages (as in the classification
    model); the dense backbone skips that work, since no output depends on it, but keeps the
    parameters so that classification checkpoints load.
    """

    _BLOCKS = {"C": CrossAttentionBlock, "D": DualCrossAttentionBlock}

    def __init__(self, config: LeMeViTConfig, in_chans: int = 3, classification: bool = False) -> None:
        super().__init__()
        w = config.widths
        self.classification = classification
        self.stem = nn.Sequential(nn.Conv2d(in_chans, w[0] // 2, 3, 2, 1), nn.BatchNorm2d(w[0] // 2), nn.GELU(),
                                  nn.Conv2d(w[0] // 2, w[0], 3, 2, 1), nn.BatchNorm2d(w[0]))
        self.meta_tokens = nn.Parameter(torch.randn(NUM_META, w[0]))
        self.transitions = nn.ModuleList(MetaTransition(w[max(i - 1, 0)], w[i]) for i in range(5))
        self.downsamples = nn.ModuleList(
            nn.Sequential(*_conv_bn(w[i - 1], w[i])) if i >= 2 else nn.Identity() for i in range(5))
        self.stages = nn.ModuleList(
            nn.ModuleList(
                SelfAttentionBlock(w[i], meta=classification) if kind == "S" else self._BLOCKS[kind](w[i])
                for _ in range(config.depths[i]))
            for i, kind in enumerate(STAGE_TYPES))
        self.feature_info: list[FeatureInfo] = [
            {"num_chs": w[i], "reduction": 4 * 2 ** (i - 1), "module": f"stages.{i}"} for i in range(1, 5)]

    def forward_all(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        x = self.stem(x)
        c = self.meta_tokens[None].repeat(x.shape[0], 1, 1)  # (B, M, d0); a copy (16 tokens) keeps autograd hooks happy
        features = []
        for i, (transition, down, blocks) in enumerate(zip(self.transitions, self.downsamples, self.stages)):
            meta_used = STAGE_TYPES[i] != "S" or self.classification
            if meta_used:
                c = transition(c)
            x = down(x)
            for block in blocks:  # type: ignore[attr-defined]  # a ModuleList; torch's stubs make its items Modules
                x, c = block(x, c)
            if i >= 1:
                features.append(x)
        return features, c

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.forward_all(x)[0]


class LeMeViTClassifier(nn.Module):
    """The classification model (for parameter and MAC checks against the paper): BN on the last map,
    LN on the meta tokens, mean of both, linear head."""

    def __init__(self, config: LeMeViTConfig, num_classes: int = 1000, in_chans: int = 3) -> None:
        super().__init__()
        self.backbone = LeMeViTBackbone(config, in_chans, classification=True)
        d = config.widths[-1]
        self.norm_x, self.norm_c = nn.BatchNorm2d(d), nn.LayerNorm(d)
        self.head = nn.Linear(d, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features, c = self.backbone.forward_all(x)
        pooled = self.norm_x(features[-1]).mean((2, 3)) + self.norm_c(c).mean(1)
        return self.head(pooled)


def init_lemevit(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def _lemevit(variant: str, num_classes: int, in_chans: int, decoder_dim: int = 256) -> Segmenter:
    backbone = LeMeViTBackbone(VARIANTS[variant], in_chans)
    model = Segmenter(backbone, MLPDecoder(backbone.feature_info, num_classes, decoder_dim))
    model.apply(init_lemevit)
    return model


@register_model
def lemevit_tiny(num_classes: int = 7, in_chans: int = 3) -> Segmenter:
    """LeMeViT-Tiny backbone (8.31 M) + all-MLP decoder."""
    return _lemevit("tiny", num_classes, in_chans)


@register_model
def lemevit_small(num_classes: int = 7, in_chans: int = 3) -> Segmenter:
    """LeMeViT-Small backbone (16.02 M) + all-MLP decoder."""
    return _lemevit("small", num_classes, in_chans)


@register_model
def lemevit_base(num_classes: int = 7, in_chans: int = 3) -> Segmenter:
    """LeMeViT-Base backbone (52.59 M) + all-MLP decoder."""
    return _lemevit("base", num_classes, in_chans)
