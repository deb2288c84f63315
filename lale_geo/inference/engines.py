"""Inference engines: raw tiles in, logits out, behind one :class:`Engine` protocol.

``torch`` runs the model eagerly (channels-last, inference mode, AMP on CUDA). ``onnxruntime`` and
``openvino`` run the same network exported once to ONNX with a static batch and tile shape (cached
under ``~/.cache/lale_geo``); on CPUs they are faster than eager PyTorch (see benchmarks/models.py).
``auto`` picks OpenVINO, then onnxruntime, then torch on the CPU, and torch on GPUs. Every path (the
CLI, ``segment``, Dask workers, evaluation) creates its engine here, with the same rule.

Normalisation is written once (:func:`normalise`): scaling is decided per scene by the caller
(``scale=(low, high)``, raw values mapped to [0, 1]), never per tile, so neighbouring tiles see the
same transform; then the card's mean and std apply.

Torch is imported only where a path needs it: a run of the weights' INT8 OpenVINO model on the CPU
(the default on CPUs) reads the card, not the network, and never imports it (most of a run's start-up).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import importlib.metadata
import importlib.util
import logging
import os
import sys
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from ..cache import cache_dir as default_cache_dir
from ..errors import InvalidInputError, LaleGeoError, WeightsError, message_line
from ..files import published
from ..weights import WeightsCard, load_card_once, load_weights_once
from .onnx_models import is_onnx_model, onnx_card

if TYPE_CHECKING:
    import torch
    from torch import nn

log = logging.getLogger(__name__)

ENGINES = ("auto", "torch", "onnxruntime", "openvino")


def _short(value: Any) -> str:
    text = " ".join(repr(value).split())  # one line, whatever the object's repr
    return text if len(text) <= 60 else text[:57] + "..."


class ModelAndCard:
    """A network with the card that says how to feed it and what its outputs mean; unpacks as
    ``model, card``.

    Made from named weights (:meth:`named`), the network is loaded (and its file's checksum checked) on
    first use of ``model``: a run of the weights' INT8 model reads only the card."""

    __slots__ = ("_model", "card", "_weights")

    def __init__(self, model: nn.Module | None, card: WeightsCard, weights: str | None = None) -> None:
        if model is None and weights is None:
            raise ValueError("ModelAndCard needs a model or the weights to load it from")
        self._model, self.card, self._weights = model, card, weights

    @classmethod
    def named(cls, weights: str | Path) -> ModelAndCard:
        """Shipped weights by name, or a .safetensors/.json path: the card now, the network when used. An
        ``.onnx`` path is another tool's model: its card from its metadata (:mod:`lale_geo.inference.onnx_models`)."""
        card = onnx_card(weights) if is_onnx_model(weights) else load_card_once(weights)
        return cls(None, card, str(weights))

    @classmethod
    def of(cls, pair: ModelAndCard | tuple) -> ModelAndCard:
        """``pair`` itself, or a (model, card) tuple as a ModelAndCard."""
        if isinstance(pair, ModelAndCard):
            return pair
        from ..weights import WeightsCard

        if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and callable(pair[0])
                and isinstance(pair[1], WeightsCard)):
            raise InvalidInputError(f"model={_short(pair)}: must be a (network, WeightsCard) pair, e.g. "
                                    "lale_geo.weights.random_weights() or load_weights(...)")
        return cls(*pair)

    @property
    def model(self) -> nn.Module:
        if self._model is None:
            self._model = load_weights_once(self._weights)[0]
        return self._model

    def __iter__(self) -> Iterator[Any]:
        return iter((self.model, self.card))

    def __getitem__(self, index: int) -> Any:
        return self.card if index in (1, -1) else (self.model, self.card)[index]

    def __len__(self) -> int:
        return 2


@runtime_checkable
class Engine(Protocol):
    """Runs a network on a batch of raw tiles.

    ``engine(tiles, scale)`` takes (B, bands, H, W) raw values and ``scale`` = (low, high), one value
    or one per band, and returns (B, classes, H, W) float32 logits.
    """

    num_classes: int
    name: str

    def __call__(self, tiles: np.ndarray, scale: tuple) -> np.ndarray: ...


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then MPS, then the CPU; ``cpu``, ``cuda``, ``cuda:N`` and ``mps`` are taken as given."""
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise InvalidInputError(f"unknown device {device!r}: use auto, cpu, cuda, cuda:N or mps") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError(f"device {device!r} asked for but CUDA is not available here")
    return resolved


def device_type(device: str = "auto") -> str:
    """``resolve_device(device).type`` (cpu, cuda or mps), without importing torch where the answer is
    certain: ``cpu``, or ``auto`` on a machine with no GPU runtime (see :func:`_no_gpu_here`)."""
    if device == "cpu" or (device == "auto" and "torch" not in sys.modules and _no_gpu_here()):
        return "cpu"
    return resolve_device(device).type


@functools.cache
def _no_gpu_here() -> bool:
    """True when torch could not find a GPU here: a CPU-only torch build, or Linux without the device
    files of an NVIDIA, AMD (ROCm) or WSL GPU. False means "ask torch"."""
    try:
        if importlib.metadata.version("torch").endswith("+cpu"):
            return True
    except importlib.metadata.PackageNotFoundError:
        return False
    dev = Path("/dev")
    return sys.platform.startswith("linux") and not any(
        any(dev.glob(pattern)) for pattern in ("nvidia*", "kfd", "dxg"))


def cpu_threads() -> int:
    """Threads for a CPU engine: torch's own setting once torch is loaded (it follows set_num_threads),
    otherwise what torch would choose: OMP_NUM_THREADS, else the physical cores this process may use."""
    if "torch" in sys.modules:
        return sys.modules["torch"].get_num_threads()
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        import psutil  # a dependency of distributed

        return max(1, min(usable, psutil.cpu_count(logical=False) or usable))
    except ImportError:
        return usable


def normalise(tiles: np.ndarray, scale: tuple, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """(B, C, H, W) raw values -> float32 network input: ``scale`` maps raw values to [0, 1] (clipped),
    then the card's ``mean`` and ``std`` apply. Contiguous NCHW.

    Written as one clip into a new float32 array and one multiply-add in place (raw values of any dtype
    go straight in): a few passes fewer than the step-by-step formula, on the thread that also reads."""
    lo, hi, m, s = (np.asarray(v, np.float32).reshape(1, -1, 1, 1) for v in (*scale, mean, std))
    a = 1.0 / ((hi - lo) * s)
    b = -lo * a - m / s
    x = np.empty(tiles.shape, np.float32)
    np.clip(tiles, lo, hi, out=x, casting="unsafe")
    x *= a
    x += b
    return x


class TorchEngine:
    """Eager PyTorch on any device: channels-last, inference mode, float16 autocast on CUDA."""

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float], device: str = "auto") -> None:
        import torch

        self.device = resolve_device(device)
        current = next(model.parameters(), torch.empty(0)).device
        if current != self.device:  # a model may be shared (cached weights): move a copy, not the original
            model = copy.deepcopy(model)
        self.model = model.eval().to(self.device, memory_format=torch.channels_last)
        self.num_classes: int = model.num_classes
        self.mean, self.std = tuple(mean), tuple(std)
        self.name = f"torch-{self.device.type}"

    def __call__(self, tiles: np.ndarray, scale: tuple) -> np.ndarray:
        import torch

        with torch.inference_mode():
            x = torch.from_numpy(normalise(tiles, scale, self.mean, self.std)).to(self.device)
            x = x.contiguous(memory_format=torch.channels_last)
            if self.device.type == "cuda":
                with torch.autocast("cuda", dtype=torch.float16):
                    logits = self.model(x)
            else:
                logits = self.model(x)
            return logits.float().cpu().numpy()


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
        return self.session.run(None, {self.input: normalise(tiles, scale, self.mean, self.std)})[0]


class OpenVINOEngine:
    """OpenVINO on the CPU. With several threads the batch is cut into parts of two tiles that run as
    parallel single-threaded streams (on these 2-core machines 1.19x the throughput of one request
    with two threads: benchmarks/engines_streams.py), and :meth:`start` runs a batch in the background
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
        source = int8_model or export_onnx(model, card, self.part, tile_size)
        core = _openvino_core()
        try:
            graph = core.read_model(str(source))
            # a graph file (INT8, another tool's ONNX) has a batch of its own, which may be fixed inside it
            self.part = self.part if int8_model is None else _fit_batch(graph, self.part, batch_size, tile_size)
            split = threads > 1 and batch_size > self.part
            # Pinning off: with it on, runs on these shared 2-core machines were at half speed now and then.
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

    def start(self, tiles: np.ndarray, scale: tuple):
        """Start a batch; returns the call that waits for its logits (a copy: the buffers are reused).
        At most two batches may be in flight: wait for one before the third start."""
        x = normalise(tiles, scale, self.mean, self.std)
        requests = self._sets[self._next]
        self._inputs[self._next] = x  # shared with the requests below: kept until their set is reused
        self._next ^= 1
        for i, request in enumerate(requests):
            request.start_async({0: x[i * self.part:(i + 1) * self.part]}, share_inputs=True)

        def wait() -> np.ndarray:
            for request in requests:
                request.wait()
            return np.concatenate([request.get_output_tensor(0).data for request in requests])
        return wait

    def __call__(self, tiles: np.ndarray, scale: tuple) -> np.ndarray:
        return self.start(tiles, scale)()


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


def _available(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def weights_digest(model: nn.Module) -> str:
    """sha256 of the network's tensors: what identifies an export or a cached engine (not the card,
    which an in-memory model may share with other tensors). Computed every time (about 20 ms for
    LALE-S1): a model changed in place must never find the engine of its old weights."""
    from safetensors.torch import save

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    return hashlib.sha256(save(state)).hexdigest()


def export_onnx(model: nn.Module, card: WeightsCard, batch_size: int, tile_size: int,
                cache_dir: Path | None = None) -> Path:
    """The model exported to ONNX for one static (batch, bands, tile, tile) shape; cached by weights.

    Safe when several processes or threads export the same model at once: each writes its own
    temporary file and the rename into place is atomic (the last one wins with identical bytes)."""
    import torch

    cache_dir = cache_dir or default_cache_dir()
    digest = hashlib.sha256(weights_digest(model).encode())
    digest.update(f"{type(model).__qualname__}|{batch_size}|{len(card.bands)}|{tile_size}|{torch.__version__}".encode())
    path = cache_dir / "onnx" / f"{card.model}-{digest.hexdigest()[:20]}.onnx"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    if not _available("onnxscript"):
        raise LaleGeoError("ONNX export needs onnxscript: pip install onnxscript (or use engine='torch')")
    dummy = torch.zeros(batch_size, len(card.bands), tile_size, tile_size)
    log.info("exporting %s to ONNX (%s)", card.model, path)
    with quiet_exporter(), published(path, overwrite=True) as tmp:
        torch.onnx.export(model.eval().cpu(), (dummy,), str(tmp), dynamo=True, verbose=False, external_data=False)
    return path


@contextlib.contextmanager
def quiet_exporter() -> Iterator[None]:
    """``torch.onnx.export`` without its chatter (warnings, and log lines about torchvision ops we do not use)."""
    onnx_log = logging.getLogger("torch.onnx")
    level = onnx_log.level
    onnx_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        onnx_log.setLevel(level)


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
    while other threads read and stitch (segment() then ran at 1.06x the CLI's throughput, against
    0.84x with one shared two-thread engine whose calls were serialised: benchmarks/paths.py). Torch
    sets its threads per process, so it gets one engine whose calls are serialised instead of
    oversubscribed cores."""
    card = weights[1]
    cpu = device_type(device) == "cpu" and engine != "torch"
    # An INT8 model is identified by its (checksum-verified) file; the network is then never loaded.
    tensors = str(int8_model) if int8_model is not None else weights_digest(weights[0])
    key = (engine, tensors, tuple(card.mean), tuple(card.std), device, batch_size, tile_size,
           threading.get_ident() if cpu else None)
    with _ENGINES_LOCK:
        if key not in _ENGINES_BY_KEY:
            made = create_engine(engine, weights, device=device, batch_size=batch_size, tile_size=tile_size,
                                 threads=1 if cpu else None, int8_model=int8_model)
            _ENGINES_BY_KEY[key] = made if cpu and not isinstance(made, TorchEngine) else SerialisedEngine(made)
        return _ENGINES_BY_KEY[key]


def start_batch(engine: Engine, stack: np.ndarray, scale: tuple) -> Callable[[], np.ndarray]:
    """Start the engine on a batch; the returned call waits for its logits. Engines that can run in the
    background (``engine.start``) compute while the caller reads and stitches; others run right here."""
    start = getattr(engine, "start", None)
    if start is not None:
        return start(stack, scale)
    logits = engine(stack, scale)
    return lambda: logits


class LogProbabilities:
    """An engine over a model that outputs probabilities: their log, so that blending and the softmax of the
    probability outputs see logits (the softmax of log p is p again)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.num_classes, self.name = inner.num_classes, inner.name

    def __call__(self, tiles: np.ndarray, scale: tuple) -> np.ndarray:
        return _log(self.inner(tiles, scale))

    def start(self, tiles: np.ndarray, scale: tuple):
        wait = start_batch(self.inner, tiles, scale)  # in the background where the inner engine can
        return lambda: _log(wait())


def _log(probabilities: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(probabilities, np.float32(1e-12)), dtype=np.float32)


class SerialisedEngine:
    """An engine that runs one batch at a time, whichever thread calls it."""

    def __init__(self, inner: Engine) -> None:
        self.inner = inner
        self.num_classes, self.name = inner.num_classes, inner.name
        self._lock = threading.Lock()

    def __call__(self, tiles: np.ndarray, scale: tuple) -> np.ndarray:
        with self._lock:
            return self.inner(tiles, scale)
