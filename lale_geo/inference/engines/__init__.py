"""Inference engines: raw tiles in, logits out, behind one :class:`Engine` protocol.

``torch`` runs the model eagerly (channels-last, inference mode, AMP on CUDA). ``onnxruntime`` and
``openvino`` run the same network exported once to ONNX with a static batch and tile shape (cached
under ``~/.cache/lale_geo``); on CPUs they are faster than eager PyTorch (see benchmarks/models.py).
``auto`` picks OpenVINO, then onnxruntime, then torch on the CPU, and torch on GPUs. Every path (the
CLI, ``segment``, Dask workers, evaluation) creates its engine here, with the same rule.

One module per engine; :mod:`.base` holds the protocol, the normalisation and the wrappers, :mod:`.devices`
the device rule, :mod:`.onnx_files` the ONNX export, :mod:`.selection` the ``auto`` rule and the per-thread pool.

Torch is imported only where a path needs it: a run of the weights' INT8 OpenVINO model on the CPU
(the default on CPUs) reads the card, not the network, and never imports it (most of a run's start-up).
"""

from ...checksums import tensors_sha256 as weights_digest  # the name of 0.1, kept for one release
from .base import Engine, LogProbabilities, SerialisedEngine, normalise, start_batch
from .devices import cpu_threads, device_type, resolve_device
from .model_and_card import ModelAndCard
from .onnx_files import export_onnx, quiet_exporter
from .onnxruntime_engine import OnnxRuntimeEngine
from .openvino_engine import OpenVINOEngine
from .selection import ENGINES, block_engine, create_engine
from .torch_engine import TorchEngine

__all__ = ["ENGINES", "Engine", "LogProbabilities", "ModelAndCard", "OnnxRuntimeEngine", "OpenVINOEngine",
           "SerialisedEngine", "TorchEngine", "block_engine", "cpu_threads", "create_engine", "device_type",
           "export_onnx", "normalise", "quiet_exporter", "resolve_device", "start_batch", "weights_digest"]
