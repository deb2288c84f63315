"""Building blocks shared by the model families (spec/lale.md §1, §3).

Feature maps are NCHW (any memory format); token sequences are (B, N, C).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class RMSNorm2d(nn.Module):
    """RMSNorm over the channel axis of an NCHW map, independently at every pixel.

    ``y = g * x / sqrt(mean_c(x^2) + eps)``; the statistic is computed in float32 so it stays exact
    under AMP. (Token sequences use ``torch.nn.RMSNorm`` over the last axis instead.)
    """

    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        inv_rms = torch.rsqrt(x32.pow(2).mean(dim=1, keepdim=True) + self.eps)
        return (x32 * inv_rms).to(x.dtype) * self.weight.view(1, -1, 1, 1).to(x.dtype)


class StarReLU(nn.Module):
    """``s * relu(x)^2 + b`` with one learnable scalar scale and bias (MetaFormer, arXiv 2210.13452)."""

    def __init__(self, scale: float = 1.0, bias: float = 0.0) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(scale))
        self.bias = nn.Parameter(torch.tensor(bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * F.relu(x).pow(2) + self.bias


class ConvNormAct(nn.Sequential):
    """Conv -> RMSNorm2d -> optional StarReLU, the unit of the stem and the downsampling layers."""

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int, stride: int = 1,
                 bias: bool = False, act: bool = True) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(in_chs, out_chs, kernel_size, stride, padding=kernel_size // 2, bias=bias),
            RMSNorm2d(out_chs),
        ]
        if act:
            layers.append(StarReLU())
        super().__init__(*layers)


class ConvMixerBlock(nn.Module):
    """ConvMixer block with RMSNorm and StarReLU (Trockman & Kolter; LALE stages 1-2).

    ``x = x + norm(act(dwconv(x)))`` then ``x = norm(act(pwconv(x)))`` (no residual on the pointwise part).
    """

    def __init__(self, dim: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.act1 = StarReLU()
        self.norm1 = RMSNorm2d(dim)
        self.pwconv = nn.Conv2d(dim, dim, 1)
        self.act2 = StarReLU()
        self.norm2 = RMSNorm2d(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.norm1(self.act1(self.dwconv(x)))
        return self.norm2(self.act2(self.pwconv(x)))


class Attention(nn.Module):
    """Global multi-head self-attention over (B, N, C) tokens, fused qkv, head dim ``head_dim``."""

    def __init__(self, dim: int, head_dim: int = 32) -> None:
        super().__init__()
        if dim % head_dim:
            raise ValueError(f"dim {dim} is not a multiple of head_dim {head_dim}")
        self.num_heads = dim // head_dim
        self.head_dim = head_dim
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        B, N, C = t.shape
        # (B, N, 3C) -> (3, B, heads, N, head_dim)
        qkv = self.qkv(t).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        out = F.scaled_dot_product_attention(q, k, v)  # scale defaults to head_dim ** -0.5
        # (B, heads, N, head_dim) -> (B, N, C)
        return self.proj(out.transpose(1, 2).reshape(B, N, C))


class ConvMLP(nn.Module):
    """Token MLP with a 3x3 depthwise conv on the hidden map (positional information, no embeddings).

    ``fc1 (C -> rC) -> dwconv 3x3 -> StarReLU -> fc2 (rC -> C)``; ``dwconv=False`` gives the plain MLP.
    """

    def __init__(self, dim: int, mlp_ratio: float = 2.0, dwconv: bool = True) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.fc1 = nn.Linear(dim, hidden)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden) if dwconv else None
        self.act = StarReLU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, t: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        h = self.fc1(t)
        if self.dwconv is not None:
            B, N, C = h.shape
            # (B, N, C) -> (B, C, H, W) for the depthwise conv, and back
            h = self.dwconv(h.transpose(1, 2).reshape(B, C, *hw)).flatten(2).transpose(1, 2)
        return self.fc2(self.act(h))


class TransformerBlock(nn.Module):
    """Pre-norm block: ``t = t + MHSA(norm(t))``; ``t = t + ConvMLP(norm(t))``."""

    def __init__(self, dim: int, head_dim: int = 32, mlp_ratio: float = 2.0,
                 mlp_dwconv: bool = True) -> None:
        super().__init__()
        self.norm1 = nn.RMSNorm(dim, eps=1e-6)
        self.attn = Attention(dim, head_dim)
        self.norm2 = nn.RMSNorm(dim, eps=1e-6)
        self.mlp = ConvMLP(dim, mlp_ratio, mlp_dwconv)

    def forward(self, t: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        t = t + self.attn(self.norm1(t))
        return t + self.mlp(self.norm2(t), hw)


def init_weights(module: nn.Module) -> None:
    """Spec init: trunc-normal(0.02) for linear and 1x1 conv weights, zero biases."""
    if isinstance(module, nn.Linear) or (isinstance(module, nn.Conv2d) and module.kernel_size == (1, 1)):
        nn.init.trunc_normal_(module.weight, std=0.02)
    if isinstance(module, (nn.Linear, nn.Conv2d)) and module.bias is not None:
        nn.init.zeros_(module.bias)
