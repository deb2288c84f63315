"""The engine rule every path uses (the CLI, ``segment``, Dask workers, evaluation): ``auto`` picks
OpenVINO, then onnxruntime, then torch on the CPU, and torch on GPUs; and the pool that keeps one engine per
Dask thread."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from ...checksums import tensors_sha256
from ...errors import InvalidInputError, LaleGeoError, WeightsError, message_line
from .base import Engine, SerialisedEngine
from .devices import cpu_threads, device_type, resolve_device
from .model_and_card import ModelAndCard
from .onnx_files import _available
from .onnxruntime_engine import OnnxRuntimeEngine
from .openvino_engine import OpenVINOEngine
from .torch_engine import TorchEngine

log = logging.getLogger(__name__)

ENGINES = ("auto", "torch", "onnxruntime", "openvino")


def create_engine(engine: str, weights: ModelAndCard | tuple, *, device: str = "auto", batch_size: int = 8,
                  tile_size: int = 512, threads: int | None = None, int8_model: Path | None = None) -> Engine:
    """An engine for ``weights`` (a (model, card) pair); ``auto`` falls back to torch (with a log line)
    when the export or compile fails. ``int8_model``: run that INT8 OpenVINO model instead (the caller
    checked that the card allows it, see :class:`lale_geo.inference.settings.InferenceSettings`); the network of
    ``weights`` is then not used, nor torch imported."""
    card = weights[1]
    if int8_model is not None:
        try:
            return OpenVINOEngine(None, card, batch_size, tile_size, threads or cpu_threads(), int8_model)
        except WeightsError:
            raise
        except Exception as e:  # noqa: BLE001 - a broken graph file must not take the run down with a traceback
            advice = "" if int8_model.suffix.lower() == ".onnx" else "; use precision=fp32"
            raise LaleGeoError(f"{int8_model}: the model failed to load ({message_line(e)}){advice}") from e
    if engine not in ENGINES:
        raise InvalidInputError(f"unknown engine {engine!r}: use one of {', '.join(ENGINES)}")
    model = weights[0]
    resolved = resolve_device(device)
    threads = threads or cpu_threads()
    if engine == "torch" or (engine == "auto" and resolved.type != "cpu"):
        return TorchEngine(model, card.mean, card.std, device)
    if engine != "auto" and resolved.type != "cpu":
        raise InvalidInputError(f"engine {engine!r} runs on the CPU only; use engine 'torch' for {resolved}")
    candidates = [engine] if engine != "auto" else [e for e in ("openvino", "onnxruntime") if _available(e)]
    classes = {"openvino": OpenVINOEngine, "onnxruntime": OnnxRuntimeEngine}
    for name in candidates:
        if not _available(name):
            raise InvalidInputError(f"engine {name!r}: the {name} package is not installed "
                                    f"(pip install 'lale_geo[fast]')")
        try:
            return classes[name](model, card, batch_size, tile_size, threads)
        except Exception as e:  # export or compile failed: fall back only when the user did not insist
            if engine != "auto":
                raise LaleGeoError(f"engine {name!r} failed to load the model: {e}") from e
            log.warning("engine %s unavailable (%s); trying the next one", name, e)
    return TorchEngine(model, card.mean, card.std, device)


_ENGINES_BY_KEY: dict[tuple, Engine] = {}
_ENGINES_LOCK = threading.Lock()


def block_engine(engine: str, weights: ModelAndCard | tuple, *, device: str = "auto", batch_size: int = 8,
                 tile_size: int = 512, int8_model: Path | None = None) -> Engine:
    """The engine of a Dask task (a block of ``segment`` or of a cluster run), kept for the next tasks:
    Dask tasks reuse it instead of exporting or compiling per block. Keyed by the tensors' digest, so an
    in-memory model shipped to a worker finds its engine again although each task gets its own copy.

    Dask runs tasks on a pool of threads, about one per core. The CPU engines (OpenVINO, onnxruntime)
    then get one engine per thread with one core each: the pool keeps every core busy with the network
    while other threads read and stitch, where one shared multi-thread engine would serialise the calls
    (benchmarks/paths.py compares the paths). Torch
    sets its threads per process, so it gets one engine whose calls are serialised instead of
    oversubscribed cores."""
    card = weights[1]
    cpu = device_type(device) == "cpu" and engine != "torch"
    # An INT8 model is identified by its (checksum-verified) file; the network is then never loaded.
    tensors = str(int8_model) if int8_model is not None else tensors_sha256(weights[0])
    key = (engine, tensors, tuple(card.mean), tuple(card.std), device, batch_size, tile_size,
           threading.get_ident() if cpu else None)
    with _ENGINES_LOCK:
        if key not in _ENGINES_BY_KEY:
            made = create_engine(engine, weights, device=device, batch_size=batch_size, tile_size=tile_size,
                                 threads=1 if cpu else None, int8_model=int8_model)
            _ENGINES_BY_KEY[key] = made if cpu and not isinstance(made, TorchEngine) else SerialisedEngine(made)
        return _ENGINES_BY_KEY[key]
