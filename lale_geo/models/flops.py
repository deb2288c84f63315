"""Parameter and multiply-accumulate counts (``torch.utils.flop_counter``).

The flop counter does not see inside the fused CPU attention kernel, so while counting we route
``scaled_dot_product_attention`` through its explicit matmul form: the attention matmuls are counted
like every other matmul.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils.flop_counter import FlopCounterMode

from .decoder import MLPDecoder


def _explicit_attention(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, **_):
    if attn_mask is not None or is_causal or dropout_p:
        raise NotImplementedError("MAC counting supports plain attention only")
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    return ((q * scale) @ k.transpose(-2, -1)).softmax(-1) @ v


def _uncounted_attention(q, k, v, *args, **kwargs):
    """Right shape, no arithmetic: for the convention that leaves attention matmuls out."""
    return q.new_zeros(q.shape[:-1] + v.shape[-1:])


class _ExplicitAttention(TorchFunctionMode):
    """Routes ``scaled_dot_product_attention`` through explicit matmuls (counted) or, with
    ``counted=False``, through a stand-in that costs nothing (the convention of some papers)."""

    def __init__(self, counted: bool = True) -> None:
        super().__init__()
        self.replacement = _explicit_attention if counted else _uncounted_attention

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.scaled_dot_product_attention:
            return self.replacement(*args, **kwargs)
        return func(*args, **kwargs)


def count_params(model: nn.Module) -> int:
    """Number of parameters."""
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def count_macs(model: nn.Module, height: int = 256, width: int | None = None,
               in_chans: int | None = None, batch: int = 1, attention: bool = True, as_run: bool = False) -> int:
    """Multiply-accumulates of one eval forward pass at ``height`` x ``width``.

    ``attention=False`` leaves the attention matmuls (QK^T, AV) out, the convention of some papers
    (LeMeViT's); ours, and ``lale-geo models``, count them. By default the decoder is counted in the
    papers' form (concat, then fuse), the figure they publish; ``as_run=True`` counts what runs, the fuse
    folded into the projections (:meth:`MLPDecoder.fused`: the same function, fewer MACs).
    """
    chans: int = in_chans if in_chans else getattr(model, "in_chans", 3)
    # Shapes are all the counter needs: run a copy on the meta device (no arithmetic, no memory).
    ghost = copy.deepcopy(model).to("meta").eval()
    for module in ghost.modules():
        if isinstance(module, MLPDecoder):
            module.fold = as_run
    x = torch.zeros(batch, chans, height, width or height, device="meta")
    with FlopCounterMode(display=False) as counter, _ExplicitAttention(counted=attention):
        ghost(x)
    return counter.get_total_flops() // 2 // batch
