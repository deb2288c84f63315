"""Inference engines behind one interface: ``engine(tiles, scale) -> logits`` and ``engine.num_classes``.

``torch`` runs the model eagerly (channels-last, inference mode, AMP on CUDA). ``onnxruntime`` and
``openvino`` run the same network exported once to ONNX with a static batch and tile shape (cached
under ``~/.cache/lale_geo``); on CPUs they are faster than eager PyTorch (see benchmarks/models.py).
``auto`` picks OpenVINO, then onnxruntime, then torch on the CPU, and torch on GPUs.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save
from torch import nn

from .cache import cache_dir as default_cache_dir
from .errors import InvalidInputError, LaleGeoError
from .inference import TilePredictor, resolve_device
from .weights import WeightsCard

log = logging.getLogger(__name__)

ENGINES = ("auto", "torch", "onnxruntime", "openvino")


def _available(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def normalise_numpy(tiles: np.ndarray, scale: tuple, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """The same normalisation as ``TilePredictor.normalise``, in numpy (float32, NCHW, contiguous)."""
    lo, hi = (np.asarray(v, np.float32).reshape(1, -1, 1, 1) for v in scale)
    x = np.clip((tiles.astype(np.float32) - lo) / (hi - lo), 0.0, 1.0)
    m = np.asarray(mean, np.float32).reshape(1, -1, 1, 1)
    s = np.asarray(std, np.float32).reshape(1, -1, 1, 1)
    return np.ascontiguousarray((x - m) / s, np.float32)


def export_onnx(model: nn.Module, card: WeightsCard, batch_size: int, tile_size: int,
                cache_dir: Path | None = None) -> Path:
    """The model exported to ONNX for one static (batch, bands, tile, tile) shape; cached by weights."""
    cache_dir = cache_dir or default_cache_dir()
    # Keyed by the tensors themselves, not the card: a cache hit must be exactly this network.
    digest = hashlib.sha256(save({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}))
    digest.update(f"{type(model).__qualname__}|{batch_size}|{len(card.bands)}|{tile_size}|{torch.__version__}".encode())
    path = cache_dir / "onnx" / f"{card.model}-{digest.hexdigest()[:20]}.onnx"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    if not _available("onnxscript"):
        raise LaleGeoError("ONNX export needs onnxscript: pip install onnxscript (or use --engine torch)")
    tmp = path.with_suffix(f".{os.getpid()}.tmp.onnx")
    dummy = torch.zeros(batch_size, len(card.bands), tile_size, tile_size)
    log.info("exporting %s to ONNX (%s)", card.model, path)
    onnx_log = logging.getLogger("torch.onnx")
    level = onnx_log.level
    onnx_log.setLevel(logging.ERROR)  # the exporter chats about torchvision ops we do not use
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model.eval().cpu(), (dummy,), str(tmp), dynamo=True, verbose=False,
                              external_data=False)
        tmp.replace(path)
    finally:
        onnx_log.setLevel(level)
        tmp.unlink(missing_ok=True)
    return path


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

    def __call__(self, tiles: np.ndarray, scale: tuple) -> np.ndarray:
        return self.session.run(None, {self.input: normalise_numpy(tiles, scale, self.mean, self.std)})[0]


class OpenVINOEngine:
    def __init__(self, model: nn.Module, card: WeightsCard, batch_size: int, tile_size: int, threads: int) -> None:
        import openvino as ov

        # Pinning off: with it on, runs on these shared 2-core machines were at half speed now and then.
        config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads, "ENABLE_CPU_PINNING": False,
                  "INFERENCE_PRECISION_HINT": "f32"}
        self.compiled = ov.Core().compile_model(str(export_onnx(model, card, batch_size, tile_size)), "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.mean, self.std, self.num_classes = card.mean, card.std, card.num_classes
        self.name = "openvino-cpu"

    def __call__(self, tiles: np.ndarray, scale: tuple) -> np.ndarray:
        result = self.request.infer({0: normalise_numpy(tiles, scale, self.mean, self.std)})
        return np.asarray(result[self.compiled.output(0)])


class TorchEngine(TilePredictor):
    @property
    def name(self) -> str:
        return f"torch-{self.device.type}"


def create_engine(engine: str, model: nn.Module, card: WeightsCard, *, device: str = "auto",
                  batch_size: int = 8, tile_size: int = 512, threads: int | None = None):
    """An engine for ``model``; ``auto`` falls back to torch (with a log line) when export fails."""
    if engine not in ENGINES:
        raise InvalidInputError(f"unknown engine {engine!r}: use one of {', '.join(ENGINES)}")
    resolved = resolve_device(device)
    threads = threads or torch.get_num_threads()
    if engine == "torch" or (engine == "auto" and resolved.type != "cpu"):
        return TorchEngine(model, card.mean, card.std, device)
    if engine != "auto" and resolved.type != "cpu":
        raise InvalidInputError(f"--engine {engine} runs on the CPU only; use --engine torch for {resolved}")
    candidates = [engine] if engine != "auto" else [e for e in ("openvino", "onnxruntime") if _available(e)]
    classes = {"openvino": OpenVINOEngine, "onnxruntime": OnnxRuntimeEngine}
    for name in candidates:
        if not _available(name):
            raise InvalidInputError(f"--engine {name}: the {name} package is not installed "
                                    f"(pip install 'lale_geo[fast]')")
        try:
            return classes[name](model, card, batch_size, tile_size, threads)
        except Exception as e:  # export or compile failed: fall back only when the user did not insist
            if engine != "auto":
                raise LaleGeoError(f"--engine {name} failed to load the model: {e}") from e
            log.warning("engine %s unavailable (%s); trying the next one", name, e)
    return TorchEngine(model, card.mean, card.std, device)
