"""onnxruntime on the CPU, running the network exported to ONNX."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ...io.scaling import Scale
from ...weights import WeightsCard
from .base import normalise
from .onnx_files import export_onnx

if TYPE_CHECKING:
    from torch import nn


class OnnxRuntimeEngine:
    def __init__(self, model: nn.Module, card: WeightsCard, batch_size: int, tile_size: int, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(export_onnx(model, card, batch_size, tile_size)), options,
                                            providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        self.mean, self.std, self.num_classes = card.mean, card.std, card.num_classes
        self.name = "onnxruntime-cpu"

    def __call__(self, tiles: np.ndarray, scale: Scale) -> np.ndarray:
        return self.session.run(None, {self.input: normalise(tiles, scale, self.mean, self.std)})[0]
