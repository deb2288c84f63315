"""LALE encoder (spec/lale.md): ConvMixer stages at high resolution, transformer stages at low.

Variants are data: depths per stage; widths, heads and MLP ratio follow the spec's proposal.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ._registry import register_model
from .decoder import FeatureInfo, MLPDecoder
from .layers import ConvMixerBlock, ConvNormAct, TransformerBlock, init_weights
from .segmenter import Segmenter


class TransformerStage(nn.Module):
    """Transformer blocks over the flattened map; takes and returns NCHW."""

    def __init__(self, dim: int, depth: int, **block_kwargs) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(TransformerBlock(dim, **block_kwargs) for _ in range(depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        t = x.flatten(2).transpose(1, 2)  # (B, C, H, W) -> (B, H*W, C)
        for block in self.blocks:
            t = block(t, (H, W))
        return t.transpose(1, 2).reshape(B, C, H, W)


class LALEEncoder(nn.Module):
    """Resolution-bifurcated encoder: stem (/4), ConvMixer stages 1-2, transformer stages 3-4.

    Args:
        in_chans: input bands.
        widths: channels of the four stages.
        depths: blocks per stage.
        kernel_size: depthwise kernel of the ConvMixer blocks.
        large_kernel: the paper's "K7" ablation baseline: the first stem conv and the stage-2
            downsampling conv are 7x7 instead of 3x3 (where the paper puts its 7x7 kernels is not stated;
            this layout adds 0.09 M params and 0.12 GMACs to S1 at 256x256, the paper's gap is 0.08 GMACs).
        mlp_ratio, head_dim, mlp_dwconv: transformer block settings.
    """

    def __init__(self, in_chans: int = 3, widths: Sequence[int] = (32, 64, 160, 256),
                 depths: Sequence[int] = (2, 2, 2, 1), kernel_size: int = 3, large_kernel: bool = False,
                 mlp_ratio: float = 2.0, head_dim: int = 32, mlp_dwconv: bool = True) -> None:
        super().__init__()
        c1 = widths[0]
        self.stem = nn.Sequential(
            ConvNormAct(in_chans, c1 // 2, 7 if large_kernel else 3, stride=2),
            ConvNormAct(c1 // 2, c1, 3, stride=2),
        )
        self.downsamples = nn.ModuleList([nn.Identity()])
        for i in range(1, 4):
            k_down = 7 if (large_kernel and i == 1) else 3
            self.downsamples.append(
                ConvNormAct(widths[i - 1], widths[i], k_down, stride=2, bias=True, act=False))
        self.stages = nn.ModuleList([
            nn.Sequential(*(ConvMixerBlock(widths[0], kernel_size) for _ in range(depths[0]))),
            nn.Sequential(*(ConvMixerBlock(widths[1], kernel_size) for _ in range(depths[1]))),
            TransformerStage(widths[2], depths[2], head_dim=head_dim, mlp_ratio=mlp_ratio,
                             mlp_dwconv=mlp_dwconv),
            TransformerStage(widths[3], depths[3], head_dim=head_dim, mlp_ratio=mlp_ratio,
                             mlp_dwconv=mlp_dwconv),
        ])
        self.feature_info: list[FeatureInfo] = [
            {"num_chs": c, "reduction": 4 * 2**i, "module": f"stages.{i}"} for i, c in enumerate(widths)
        ]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        features = []
        for down, stage in zip(self.downsamples, self.stages):
            x = stage(down(x))
            features.append(x)
        return features


def _lale(depths: tuple[int, int, int, int], num_classes: int, in_chans: int,
          decoder_dim: int = 128, **encoder_kwargs) -> Segmenter:
    encoder = LALEEncoder(in_chans=in_chans, depths=depths, **encoder_kwargs)
    model = Segmenter(encoder, MLPDecoder(encoder.feature_info, num_classes, decoder_dim))
    model.apply(init_weights)
    return model


@register_model
def lale_s1(num_classes: int = 7, in_chans: int = 3, **kwargs) -> Segmenter:
    """LALE-S1: 1.6 M params, 0.59 GMACs at 256x256 (paper)."""
    return _lale((2, 2, 2, 1), num_classes, in_chans, **kwargs)


@register_model
def lale_s2(num_classes: int = 7, in_chans: int = 3, **kwargs) -> Segmenter:
    """LALE-S2: 2.6 M params, 0.78 GMACs at 256x256 (paper)."""
    return _lale((2, 2, 4, 2), num_classes, in_chans, **kwargs)


@register_model
def lale_s3(num_classes: int = 7, in_chans: int = 3, **kwargs) -> Segmenter:
    """LALE-S3 (depths ours; not published for land cover)."""
    return _lale((2, 2, 6, 2), num_classes, in_chans, **kwargs)


@register_model
def lale_s4(num_classes: int = 7, in_chans: int = 3, **kwargs) -> Segmenter:
    """LALE-S4 (depths ours; not published for land cover)."""
    return _lale((2, 2, 8, 3), num_classes, in_chans, **kwargs)
