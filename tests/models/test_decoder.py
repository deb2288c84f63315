"""The all-MLP decoder: its fuse convolution folded into the projections is the same function as the
paper's concat-then-fuse, output and gradients."""

import torch
import torch.nn.functional as F

from lale_geo.models.decoder import MLPDecoder

INFO = [{"num_chs": 24, "reduction": 4, "module": "s1"}, {"num_chs": 40, "reduction": 8, "module": "s2"},
        {"num_chs": 64, "reduction": 16, "module": "s3"}, {"num_chs": 96, "reduction": 32, "module": "s4"}]


def concat_then_fuse(decoder: MLPDecoder, features: list[torch.Tensor]) -> torch.Tensor:
    """The fuse convolution's output as the paper writes it: project, resize, concatenate, fuse."""
    size = features[0].shape[-2:]
    maps = [F.interpolate(p(f), size=size, mode="bilinear", align_corners=False)
            for p, f in zip(decoder.proj, features)]
    return decoder.fuse[0](torch.cat(maps, dim=1))


def features(batch: int = 2, size: int = 96, seed: int = 0) -> list[torch.Tensor]:
    torch.manual_seed(seed)
    return [torch.randn(batch, f["num_chs"], size // f["reduction"], size // f["reduction"], dtype=torch.float64)
            for f in INFO]


def test_the_folded_fuse_equals_concat_then_fuse_up_to_rounding():
    torch.manual_seed(1)
    decoder = MLPDecoder(INFO, num_classes=5, dim=32).double().eval()
    with torch.no_grad():
        for p in decoder.proj:  # biases that matter: the fold must carry them through the resize
            p.bias.normal_(0, 1)
    feats = features()
    torch.testing.assert_close(decoder.fused(feats), concat_then_fuse(decoder, feats), rtol=1e-10, atol=1e-10)
    out = decoder(feats)
    assert out.shape == (2, 5, 24, 24)
    reference = decoder.classifier(decoder.fuse[2](decoder.fuse[1](concat_then_fuse(decoder, feats))))
    torch.testing.assert_close(out, reference, rtol=1e-10, atol=1e-10)
    decoder.fold = False  # the paper's form, as the MAC count runs it
    torch.testing.assert_close(decoder(feats), reference, rtol=1e-10, atol=1e-10)


def test_training_through_the_fold_gets_the_same_gradients():
    torch.manual_seed(2)
    decoder = MLPDecoder(INFO, num_classes=3, dim=16).double()
    feats = features(seed=3)
    grads = []
    for forward in (decoder.fused, lambda f: concat_then_fuse(decoder, f)):
        decoder.zero_grad()
        forward(feats).square().mean().backward()
        grads.append({n: p.grad.clone() for n, p in decoder.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and "fuse.0.weight" in grads[0] and "proj.3.bias" in grads[0]
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], rtol=1e-9, atol=1e-12)


def test_the_mac_count_is_the_papers_form_unless_asked_for_what_runs():
    from lale_geo.models import count_macs, create_model

    model = create_model("lale_s1", num_classes=5)
    published, run = count_macs(model, 256), count_macs(model, 256, as_run=True)
    assert abs(published / 1e9 - 0.60) < 0.05  # the spec's 0.60 GMACs at 256²
    # the fold removes the fuse conv at stride 4 (4*dim -> dim channels, 64² px) and adds the products that
    # fold it into the projections (dim x dim times dim x C_i per stage, once per pass)
    dim = model.decoder.proj[0].out_channels
    stages = sum(p.in_channels for p in model.decoder.proj)
    assert published - run == 4 * dim * dim * 64 * 64 - dim * dim * stages and model.decoder.fold
