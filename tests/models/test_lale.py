import pytest
import torch

from lale_geo.models import count_macs, count_params, create_model
from lale_geo.models.flops import _ExplicitAttention
from lale_geo.models.layers import Attention
from tests.helpers import assert_onnx_parity

# (params target, tolerance), (GMACs at 256x256 target, tolerance): the paper's numbers, 7 classes.
PAPER = {"lale_s1": ((1.6e6, 0.03), (0.59e9, 0.10)), "lale_s2": ((2.6e6, 0.03), (0.78e9, 0.10))}


@pytest.mark.parametrize("name", sorted(PAPER))
def test_params_and_macs_match_the_paper(name):
    (params, p_tol), (macs, m_tol) = PAPER[name]
    model = create_model(name, num_classes=7)
    assert abs(count_params(model) / params - 1) <= p_tol
    assert abs(count_macs(model, 256) / macs - 1) <= m_tol


def test_variants_grow_monotonically_and_k7_ablation_costs_more():
    sizes = [count_params(create_model(f"lale_s{i}")) for i in range(1, 5)]
    assert sizes == sorted(sizes) and len(set(sizes)) == 4
    base, k7 = create_model("lale_s1"), create_model("lale_s1", large_kernel=True)
    assert count_macs(k7, 256) > count_macs(base, 256)
    assert count_params(k7) > count_params(base)


def test_mac_count_includes_attention_matmuls():
    attn = Attention(64, head_dim=32)
    n = 100
    linear = n * 64 * 3 * 64 + n * 64 * 64
    matmuls = 2 * 2 * n * n * 32  # q@k^T and attn@v, 2 heads
    with torch.no_grad():
        from torch.utils.flop_counter import FlopCounterMode
        with FlopCounterMode(display=False) as counter, _ExplicitAttention():
            attn(torch.zeros(1, n, 64))
    assert counter.get_total_flops() // 2 == linear + matmuls


def test_macs_scale_with_input_area_for_convs_and_quadratically_in_attention():
    model = create_model("lale_s1")
    m256, m512 = count_macs(model, 256), count_macs(model, 512)
    assert 4.0 < m512 / m256 < 5.5  # attention grows 16x, the rest 4x


@pytest.mark.parametrize("shape", [(1, 3, 1, 1), (2, 3, 33, 47), (3, 3, 64, 64), (1, 3, 100, 130)])
def test_any_input_size_gives_logits_at_input_size(shape):
    model = create_model("lale_s1", num_classes=5).eval()
    with torch.inference_mode():
        out = model(torch.randn(*shape))
    assert out.shape == (shape[0], 5, *shape[2:])
    assert torch.isfinite(out).all()


def test_eval_is_deterministic_and_batch_independent():
    torch.manual_seed(0)
    model = create_model("lale_s1").eval()
    x = torch.randn(3, 3, 96, 64)
    with torch.inference_mode():
        a, b, single = model(x), model(x), model(x[1:2])
    assert torch.equal(a, b)
    torch.testing.assert_close(a[1:2], single, rtol=1e-4, atol=1e-4)


def test_channels_last_gives_the_same_logits():
    model = create_model("lale_s2").eval()
    x = torch.randn(2, 3, 64, 96)
    with torch.inference_mode():
        ref = model(x)
        cl = model.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(ref, cl, rtol=1e-4, atol=1e-4)


def test_every_parameter_gets_a_gradient():
    torch.manual_seed(0)
    model = create_model("lale_s1", num_classes=4).train()
    logits = model(torch.randn(2, 3, 64, 64))
    torch.nn.functional.cross_entropy(logits, torch.randint(0, 4, (2, 64, 64))).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing
    assert all(float(p.grad.abs().sum()) > 0 for p in model.parameters())


def test_feature_info_describes_the_encoder_outputs():
    model = create_model("lale_s1")
    feats = model.encoder(torch.zeros(1, 3, 128, 128))
    assert [f.shape[1] for f in feats] == [i["num_chs"] for i in model.encoder.feature_info]
    assert [128 // f.shape[-1] for f in feats] == [i["reduction"] for i in model.encoder.feature_info]


def test_onnx_export_matches_torch(tmp_path):
    assert_onnx_parity(create_model("lale_s1", num_classes=5), torch.randn(2, 3, 96, 160), tmp_path)
