import torch
import torch.nn.functional as F

from lale_geo.models.layers import Attention, ConvMixerBlock, RMSNorm2d, StarReLU


def test_rmsnorm2d_matches_formula_per_pixel():
    torch.manual_seed(0)
    norm = RMSNorm2d(6)
    with torch.no_grad():
        norm.weight.copy_(torch.linspace(0.5, 2.0, 6))
    x = torch.randn(2, 6, 5, 7) * 3 + 1
    expected = x / torch.sqrt((x**2).mean(dim=1, keepdim=True) + 1e-6) * norm.weight.view(1, 6, 1, 1)
    torch.testing.assert_close(norm(x), expected)
    # no mean subtraction: a constant positive input normalises to the gain, not to zero
    torch.testing.assert_close(norm(torch.full((1, 6, 2, 2), 4.0))[0, :, 0, 0], norm.weight.detach(),
                               rtol=1e-5, atol=1e-5)


def test_rmsnorm2d_is_memory_format_independent():
    x = torch.randn(2, 8, 9, 9)
    norm = RMSNorm2d(8)
    torch.testing.assert_close(norm(x), norm(x.contiguous(memory_format=torch.channels_last)))


def test_starrelu_matches_formula_and_is_learnable():
    act = StarReLU(scale=0.8944, bias=-0.4472)
    x = torch.linspace(-3, 3, 101)
    torch.testing.assert_close(act(x), 0.8944 * torch.clamp(x, min=0) ** 2 - 0.4472)
    assert {n for n, p in act.named_parameters() if p.requires_grad} == {"scale", "bias"}
    assert act.scale.numel() == 1 and act.bias.numel() == 1


def test_convmixer_block_residual_then_pointwise():
    torch.manual_seed(0)
    block = ConvMixerBlock(8)
    x = torch.randn(1, 8, 6, 6)
    mid = x + block.norm1(block.act1(block.dwconv(x)))
    torch.testing.assert_close(block(x), block.norm2(block.act2(block.pwconv(mid))))


def test_attention_equals_explicit_softmax_attention():
    torch.manual_seed(0)
    attn = Attention(64, head_dim=32)
    t = torch.randn(2, 10, 64)
    q, k, v = attn.qkv(t).reshape(2, 10, 3, 2, 32).permute(2, 0, 3, 1, 4)
    weights = F.softmax(q @ k.transpose(-2, -1) / 32**0.5, dim=-1)
    expected = attn.proj((weights @ v).transpose(1, 2).reshape(2, 10, 64))
    torch.testing.assert_close(attn(t), expected, rtol=1e-5, atol=1e-5)
