import math

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from lale_geo.models import count_macs, count_params, create_model
from lale_geo.models.flops import _ExplicitAttention
from lale_geo.models.lemevit import VARIANTS, DualCrossAttentionBlock, LeMeViTBackbone, LeMeViTClassifier
from tests.helpers import assert_onnx_parity


def meta(build):
    with torch.device("meta"):
        return build()


@pytest.mark.parametrize("variant,classifier,backbone", [
    ("tiny", 8.64e6, 8.31e6), ("small", 16.40e6, 16.02e6), ("base", 53.10e6, 52.59e6)])
def test_parameter_counts_equal_the_paper(variant, classifier, backbone):
    assert abs(count_params(meta(lambda: LeMeViTClassifier(VARIANTS[variant]))) / classifier - 1) < 0.005
    assert abs(count_params(meta(lambda: LeMeViTBackbone(VARIANTS[variant]))) / backbone - 1) < 0.005


@pytest.mark.parametrize("variant,gmacs", [("small", 3.74), ("base", 11.06)])
def test_gmacs_at_224_follow_the_papers_convention(variant, gmacs):
    model = meta(lambda: LeMeViTClassifier(VARIANTS[variant]))
    without = count_macs(model, 224, in_chans=3, attention=False)
    assert abs(without / 1e9 / gmacs - 1) < 0.03
    assert count_macs(model, 224, in_chans=3) > 1.03 * without  # ours include the attention matmuls


def attention_macs(block, tokens_side, dim):
    x, c = torch.zeros(1, dim, tokens_side, tokens_side), torch.zeros(1, 16, dim)
    flops = []
    for counted in (False, True):
        with torch.no_grad(), FlopCounterMode(display=False) as counter, _ExplicitAttention(counted):
            block(x, c)
        flops.append(counter.get_total_flops())
    return (flops[1] - flops[0]) / 2


def test_dual_cross_attention_cost_is_linear_in_image_tokens():
    block = DualCrossAttentionBlock(64).eval()
    small, large = attention_macs(block, 32, 64), attention_macs(block, 64, 64)
    assert small == 2 * 2 * 32 * 32 * 16 * 64  # two branches, QK and AV, N x M x d each
    assert large / small == pytest.approx(4.0)  # 4x the tokens -> 4x the cost (self-attention: 16x)


def test_dca_scales_use_the_full_width_and_the_actual_token_count():
    s_x, s_c = DualCrossAttentionBlock.scales(64, 128 * 128, 16)
    assert s_x == pytest.approx(0.0357, abs=1e-4) and s_c == pytest.approx(0.125)
    s_x, _ = DualCrossAttentionBlock.scales(128, 64 * 64, 16)
    assert s_x == pytest.approx(math.log(16) / math.log(4096) / math.sqrt(128)) == pytest.approx(0.0295, abs=1e-4)


def test_dca_block_matches_an_explicit_computation():
    torch.manual_seed(0)
    block = DualCrossAttentionBlock(64).eval()
    x, c = torch.randn(2, 64, 8, 8), torch.randn(2, 16, 64)
    out_x, out_c = block(x, c)
    t = (x + block.cpe(x)).flatten(2).transpose(1, 2)
    q1, k1, v1 = block.qkv_x(block.norm1(t)).reshape(2, 64, 3, 2, 32).permute(2, 0, 3, 1, 4)
    q2, k2, v2 = block.qkv_c(block.norm1(c)).reshape(2, 16, 3, 2, 32).permute(2, 0, 3, 1, 4)
    s_x, s_c = math.log(16) / math.log(64) / 8, 1 / 8
    xa = ((q1 @ k2.transpose(-1, -2)) * s_x).softmax(-1) @ v2
    ca = ((q2 @ k1.transpose(-1, -2)) * s_c).softmax(-1) @ v1
    t = t + block.proj_x(xa.transpose(1, 2).reshape(2, 64, 64))
    t = t + block.mlp(block.norm2(t))
    c2 = c + block.proj_c(ca.transpose(1, 2).reshape(2, 16, 64))
    c2 = c2 + block.mlp(block.norm2(c2))
    torch.testing.assert_close(out_x, t.transpose(1, 2).reshape(2, 64, 8, 8), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out_c, c2, rtol=1e-4, atol=1e-5)


def test_backbone_publishes_four_strides():
    backbone = LeMeViTBackbone(VARIANTS["tiny"]).eval()
    with torch.no_grad():
        feats = backbone(torch.zeros(1, 3, 128, 96))
    assert [f.shape[1] for f in feats] == [64, 128, 192, 320]
    assert [128 // f.shape[2] for f in feats] == [4, 8, 16, 32] == [i["reduction"] for i in backbone.feature_info]


@pytest.mark.parametrize("shape", [(1, 3, 64, 64), (2, 3, 70, 45)])
def test_segmentation_model_any_size(shape):
    model = create_model("lemevit_tiny", num_classes=6).eval()
    with torch.inference_mode():
        out = model(torch.randn(*shape))
    assert out.shape == (shape[0], 6, *shape[2:]) and torch.isfinite(out).all()


def test_lemevit_onnx_export_matches_torch(tmp_path):
    assert_onnx_parity(create_model("lemevit_tiny", num_classes=5), torch.randn(1, 3, 128, 128), tmp_path)
