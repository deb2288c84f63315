"""The engine protocol and what every engine shares: raw tiles in, logits out.

Normalisation is written once (:func:`normalise`): scaling is decided per scene by the caller (a
:class:`~lale_geo.io.scaling.Scale`, raw values mapped to [0, 1]), never per tile, so neighbouring tiles see the
same transform; then the card's mean and std apply. The wrappers here (:class:`LogProbabilities`,
:class:`SerialisedEngine`) and :func:`start_batch` work over any engine.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from ...io.scaling import Scale


@runtime_checkable
class Engine(Protocol):
    """Runs a network on a batch of raw tiles.

    ``engine(tiles, scale)`` takes (B, bands, H, W) raw values and ``scale`` = (low, high), one value
    or one per band, and returns (B, classes, H, W) float32 logits.
    """

    num_classes: int
    name: str

    def __call__(self, tiles: np.ndarray, scale: Scale) -> np.ndarray: ...


def normalise(tiles: np.ndarray, scale: Scale, mean: Sequence[float], std: Sequence[float],
              out: np.ndarray | None = None) -> np.ndarray:
    """(B, C, H, W) raw values -> float32 network input: ``scale`` maps raw values to [0, 1] (clipped),
    then the card's ``mean`` and ``std`` apply. Contiguous NCHW, in ``out`` when given (a float32 array of
    the same shape that the caller reuses: a fresh array per batch costs page faults where malloc hands
    large blocks back to the system at once, as dask workers are set up to do).

    Written as one clip into a new float32 array and one multiply-add in place (raw values of any dtype
    go straight in): a few passes fewer than the step-by-step formula, on the thread that also reads."""
    lo, hi, m, s = (np.asarray(v, np.float32).reshape(1, -1, 1, 1) for v in (*scale, mean, std))
    a = 1.0 / ((hi - lo) * s)
    b = -lo * a - m / s
    x = out if out is not None and out.shape == tiles.shape else np.empty(tiles.shape, np.float32)
    np.clip(tiles, lo, hi, out=x, casting="unsafe")
    x *= a
    x += b
    return x


# A batch's logits: a (B, C, H, W) array, or B (C, H, W) arrays (an engine's reused output buffers)
BatchLogits = np.ndarray | list[np.ndarray]


def start_batch(engine: Engine, stack: np.ndarray, scale: Scale) -> Callable[[], BatchLogits]:
    """Start the engine on a batch; the returned call waits for it and gives each tile's logits in order.
    Engines that can run in the background (``engine.start``) compute while the caller reads and stitches
    (their logits may be views into buffers reused two starts later: use them before then); others run
    right here."""
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

    def __call__(self, tiles: np.ndarray, scale: Scale) -> np.ndarray:
        return _log(self.inner(tiles, scale))

    def start(self, tiles: np.ndarray, scale: Scale):
        wait = start_batch(self.inner, tiles, scale)  # in the background where the inner engine can
        return lambda: _log(wait())


def _log(probabilities: BatchLogits) -> np.ndarray:
    return np.log(np.maximum(probabilities, np.float32(1e-12)), dtype=np.float32)


class SerialisedEngine:
    """An engine that runs one batch at a time, whichever thread calls it."""

    def __init__(self, inner: Engine) -> None:
        self.inner = inner
        self.num_classes, self.name = inner.num_classes, inner.name
        self._lock = threading.Lock()

    def __call__(self, tiles: np.ndarray, scale: Scale) -> np.ndarray:
        with self._lock:
            return self.inner(tiles, scale)
