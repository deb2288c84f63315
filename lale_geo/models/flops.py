"""Parameter and multiply-accumulate counts (``torch.utils.flop_counter``).

The flop counter does not see inside the fused CPU attention kernel, so while counting we route
``scaled_dot_product_attention`` through its explicit matmul form: the attention matmuls are counted
like every other matmul.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils.flop_counter import FlopCounterMode


def _explicit_attention(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, **_):
    if attn_mask is not None or is_causal or dropout_p:
        raise NotImplementedError("MAC counting supports plain attention only")
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    return ((q * scale) @ k.transpose(-2, -1)).softmax(-1) @ v


class _ExplicitAttention(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.scaled_dot_product_attention:
            return _explicit_attention(*args, **kwargs)
        return func(*args, **kwargs)


def count_params(model: nn.Module) -> int:
    """Number of parameters."""
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def count_macs(model: nn.Module, height: int = 256, width: int | None = None,
               in_chans: int | None = None, batch: int = 1) -> int:
    """Multiply-accumulates of one eval forward pass at ``height`` x ``width``, attention included."""
    in_chans = in_chans or getattr(model, "in_chans", 3)
    x = torch.zeros(batch, in_chans, height, width or height)
    was_training = model.training
    model.eval()
    try:
        with FlopCounterMode(display=False) as counter, _ExplicitAttention():
            model(x)
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2 // batch
