"""OpenVINO on the CPU: the network exported to ONNX, the weights' INT8 model, or another tool's ONNX model,
compiled once (OpenVINO's cache keeps the compiled model across runs)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ...cache import cache_dir as default_cache_dir
from ...errors import InvalidInputError, WeightsError, message_line
from ...io.scaling import Scale
from ...weights import WeightsCard
from .base import normalise
from .onnx_files import export_onnx

if TYPE_CHECKING:
    from torch import nn


class OpenVINOEngine:
    """OpenVINO on the CPU. With several threads the batch is cut into parts of two tiles that run as
    parallel single-threaded streams (more throughput than one request with every thread on small CPUs:
    benchmarks/engines_streams.py), and :meth:`start` runs a batch in the background
    while the caller reads and stitches (two sets of requests: one computing, one being collected)."""

    PART = 2  # tiles per request when the batch is split across streams

    def __init__(self, model: nn.Module | None, card: WeightsCard, batch_size: int, tile_size: int, threads: int,
                 int8_model: Path | None = None) -> None:
        """``model`` is exported to ONNX for the fp32 graph; with ``int8_model`` it is not used (None is fine)."""
        if int8_model is not None and batch_size % self.PART:
            raise InvalidInputError(f"batch_size={batch_size}: the INT8 model runs batches of a multiple of "
                                    f"{self.PART}")
        # Parts of PART tiles whatever the thread count: a one-thread Dask worker and a two-thread local
        # run then compile the same graph and give the same logits.
        self.part = self.PART if batch_size % self.PART == 0 else batch_size
        if int8_model is None:
            assert model is not None, "OpenVINOEngine needs the network, or the INT8 model to run instead"
            source = export_onnx(model, card, self.part, tile_size)
        else:
            source = int8_model
        core = _openvino_core()
        try:
            graph = core.read_model(str(source))
            # a graph file (INT8, another tool's ONNX) has a batch of its own, which may be fixed inside it
            self.part = self.part if int8_model is None else _fit_batch(graph, self.part, batch_size, tile_size)
            split = threads > 1 and batch_size > self.part
            # Pinning off: with it on, runs on shared machines were at half speed now and then.
            config = {"INFERENCE_NUM_THREADS": threads, "ENABLE_CPU_PINNING": False,
                      "INFERENCE_PRECISION_HINT": "f32"}
            config.update({"PERFORMANCE_HINT": "THROUGHPUT", "NUM_STREAMS": threads} if split else
                          {"PERFORMANCE_HINT": "LATENCY"})
            self.compiled = core.compile_model(graph, "CPU", config)
        except RuntimeError as e:  # OpenVINO's message runs over many lines (source locations); the last says why
            if int8_model is None:
                raise
            raise WeightsError(f"{int8_model}: OpenVINO cannot read the model ({message_line(e, last=True)})") from None
        parts = batch_size // self.part
        self._sets = [[self.compiled.create_infer_request() for _ in range(parts)] for _ in range(2)]
        self._next = 0
        self._inputs: list[np.ndarray | None] = [None, None]
        self.mean, self.std, self.num_classes = card.mean, card.std, card.num_classes
        self.name = "openvino-cpu" if int8_model is None else (
            "openvino-cpu-onnx" if int8_model.suffix.lower() == ".onnx" else "openvino-cpu-int8")

    def start(self, tiles: np.ndarray, scale: Scale) -> Callable[[], list[np.ndarray]]:
        """Start a batch; returns the call that waits for it and gives each tile's (C, H, W) logits: views
        into the requests' output buffers, valid until this set of requests runs again (two starts later),
        so that no batch allocates its output. At most two batches may be in flight: wait for one before
        the third start."""
        # this set's input buffer is free again: its batch was waited for before a third start
        x = normalise(tiles, scale, self.mean, self.std, out=self._inputs[self._next])
        requests = self._sets[self._next]
        self._inputs[self._next] = x  # shared with the requests below: kept until their set is reused
        self._next ^= 1
        for i, request in enumerate(requests):
            request.start_async({0: x[i * self.part:(i + 1) * self.part]}, share_inputs=True)

        def wait() -> list[np.ndarray]:
            for request in requests:
                request.wait()
            return [tile for request in requests for tile in request.get_output_tensor(0).data]
        return wait

    def __call__(self, tiles: np.ndarray, scale: Scale) -> np.ndarray:
        return np.stack(self.start(tiles, scale)())  # a copy: the output buffers are reused


def _fit_batch(graph, part: int, batch_size: int, tile_size: int) -> int:
    """Give the graph's input the shape (part, bands, tile, tile); a graph whose shape is fixed inside it (a
    reshape to a constant batch, as exporters write) keeps its own batch when ``batch_size`` is a multiple
    of it. Returns the tiles per request."""
    shape = graph.input(0).get_partial_shape()
    bands = shape[1].get_length() if shape[1].is_static else 3
    own = [d.get_length() if d.is_static else None for d in shape]
    if own == [part, bands, tile_size, tile_size]:
        return part
    try:
        graph.reshape({graph.input(0): [part, bands, tile_size, tile_size]})
        graph.validate_nodes_and_infer_types()
        return part
    except RuntimeError:
        if own[2:] == [tile_size, tile_size] and own[0] and batch_size % own[0] == 0:
            graph.reshape({graph.input(0): own})  # back to the shape it was made for
            return own[0]
        raise WeightsError(f"the model's input is fixed to {own}: run it with --tile-size {own[2]} and a batch size "
                           f"that is a multiple of {own[0]}") from None


def _openvino_core():
    """An OpenVINO core that keeps compiled models under the cache folder: a run that compiles a model
    compiled before loads it instead of compiling it again. OpenVINO
    keys the cache by the model, the device and the config, and compiles anew when an entry is unusable;
    without a writable cache folder it simply compiles."""
    import openvino as ov

    core = ov.Core()
    folder = default_cache_dir() / "openvino"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return core
    if os.access(folder, os.W_OK):
        core.set_property({"CACHE_DIR": str(folder)})
    return core
