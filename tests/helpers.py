"""Small models with a known receptive field, for exact stitching tests, and their cards."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from lale_geo.weights import ClassInfo, WeightsCard


class LocalModel(nn.Module):
    """A per-pixel (``radius=0``) or small-conv model: its output depends only on nearby pixels."""

    size_multiple = 32

    def __init__(self, num_classes: int = 4, radius: int = 0, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.num_classes = num_classes
        self.net = nn.Sequential(nn.Conv2d(3, 16, 2 * radius + 1, padding=radius), nn.Tanh(),
                                 nn.Conv2d(16, num_classes, 1))

    def forward(self, x):
        return self.net(x) * 10


class ConstantModel(nn.Module):
    size_multiple = 32

    def __init__(self, logits=(0.3, 2.0, -1.0)) -> None:
        super().__init__()
        self.num_classes = len(logits)
        self.register_buffer("logits", torch.tensor(logits))

    def forward(self, x):
        return self.logits.view(1, -1, 1, 1).expand(x.shape[0], -1, *x.shape[2:]).clone()


def card_for(num_classes: int, tile_size: int = 128, overlap: int = 32) -> WeightsCard:
    return WeightsCard(
        name="test", model="lale_s1",
        classes=tuple(ClassInfo(i, f"c{i}", (10 * i, 20, 30)) for i in range(num_classes)),
        bands=("red", "green", "blue"), input_range=(0, 255), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25),
        tile_size=tile_size, overlap=overlap, license="n/a", sha256="0" * 64)


def assert_onnx_parity(model, x, tmp_path, tolerance=1e-4):
    """The model exported with torch.onnx gives the same logits under onnxruntime."""
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    with torch.inference_mode():
        ref = model.eval()(x).numpy()
    path = tmp_path / "model.onnx"
    torch.onnx.export(model, (x,), str(path), dynamo=True, verbose=False)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    assert np.abs(out - ref).max() < tolerance
