"""Test-time augmentation (TTA) as an engine wrapper: run any engine on flipped/rotated copies of a batch,
undo the transform on the logits and average them.

Its one job is that wrapper. ``TTAEngine`` has the engine interface (``engine(tiles, scale) -> logits``,
``num_classes``, ``name``), so the tile loop, the stitcher and the writers do not know it is there. Each
pass feeds the inner engine a batch of the same shape (static-shape ONNX/OpenVINO engines need that), and
the passes are averaged as logits (the mean of logits, not of probabilities: cheaper, and it is what a
single pass hands to the stitcher too).

Modes (``tta_cost`` gives the passes per tile, for a run plan):

- ``none``: one pass, the engine itself.
- ``flips``: identity, horizontal flip, vertical flip, both (4 passes).
- ``d4``: the 8 symmetries of the square (flips and quarter turns); tiles must be square, as ours are.

A transform is only offered when the weights were trained with it: a network that never saw rotated
scenes is not rotation-invariant, so averaging over rotations would blur its output instead of
smoothing it. The card's ``training`` dict may say ``"rot90": false`` or ``"flips": false``; absent
keys mean allowed (``lale-geo train`` always uses both).

Example:
    >>> engine = with_tta(create_engine("auto", model, card), "flips", card)
    >>> logits = engine(tiles, scaling.scale)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InvalidInputError
from ..io.scaling import Scale

if TYPE_CHECKING:  # type hints only: TTA itself is pure numpy and needs no torch
    from ..weights import WeightsCard
    from .engines import Engine

TTA_MODES = ("none", "flips", "d4")
_PASSES = {"none": 1, "flips": 4, "d4": 8}


@dataclass(frozen=True)
class Transform:
    """A spatial symmetry of (..., H, W) arrays: optional flips of x and y, then ``quarter_turns`` rot90s.

    Only the last two axes move, so the same transform applies to (B, bands, H, W) tiles and to
    (B, classes, H, W) logits, and per-band scaling is unaffected.
    """

    name: str
    flip_x: bool = False
    flip_y: bool = False
    quarter_turns: int = 0

    def apply(self, x: np.ndarray) -> np.ndarray:
        if self.flip_x:
            x = x[..., :, ::-1]
        if self.flip_y:
            x = x[..., ::-1, :]
        return np.rot90(x, self.quarter_turns, axes=(-2, -1)) if self.quarter_turns else x

    def invert(self, y: np.ndarray) -> np.ndarray:
        # Undo in reverse order: the turns first, then the flips (each flip is its own inverse).
        if self.quarter_turns:
            y = np.rot90(y, -self.quarter_turns, axes=(-2, -1))
        if self.flip_y:
            y = y[..., ::-1, :]
        if self.flip_x:
            y = y[..., :, ::-1]
        return y


IDENTITY = Transform("identity")
FLIPS = (IDENTITY, Transform("flip-x", flip_x=True), Transform("flip-y", flip_y=True),
         Transform("flip-xy", flip_x=True, flip_y=True))
# The dihedral group D4: four turns, each with and without a mirror (flip-y and flip-xy are among them,
# as a mirror plus two turns and as two turns).
D4 = tuple(Transform(f"rot{90 * k}" + ("+flip-x" if mirror else ""), flip_x=mirror, quarter_turns=k)
           for mirror in (False, True) for k in range(4))


def _check_mode(mode: str) -> None:
    if mode not in TTA_MODES:
        raise InvalidInputError(f"unknown TTA mode {mode!r}: use one of {', '.join(TTA_MODES)}")


def tta_cost(mode: str) -> int:
    """Inference passes per tile for ``mode`` (1 for ``none``, 4 for ``flips``, 8 for ``d4``)."""
    _check_mode(mode)
    return _PASSES[mode]


def tta_transforms(mode: str, card: WeightsCard | Any | None = None) -> list[Transform]:
    """The transforms of ``mode``, refused when the weights' card says they were not trained with them.

    Args:
        mode: ``none``, ``flips`` or ``d4``.
        card: the weights card (anything with a ``training`` dict), or None to skip the check.

    Raises:
        InvalidInputError: an unknown mode, or a mode the weights were not trained for.
    """
    _check_mode(mode)
    if mode == "none":
        return [IDENTITY]
    training = getattr(card, "training", None) or {}
    name = getattr(card, "name", "these weights")
    if training.get("flips") is False:
        raise InvalidInputError(f"tta={mode}: weights {name!r} were not trained with flips "
                                "(their card says training.flips = false); use tta=none")
    if mode == "d4" and training.get("rot90") is False:
        raise InvalidInputError(f"tta=d4: weights {name!r} were not trained with rot90 "
                                "(their card says training.rot90 = false); use tta=flips or tta=none")
    return list(FLIPS if mode == "flips" else D4)


class TTAEngine:
    """An engine that averages the logits of ``inner`` over spatial transforms of each batch.

    Args:
        inner: any engine (``__call__(tiles, scale) -> logits``, ``num_classes``, ``name``).
        transforms: from :func:`tta_transforms`; identity included if it should count as a pass.
    """

    def __init__(self, inner: Engine, transforms: Sequence[Transform]) -> None:
        if not transforms:
            raise InvalidInputError("TTA needs at least one transform")
        self.inner = inner
        self.transforms = tuple(transforms)
        self.num_classes: int = inner.num_classes
        self.name = f"{inner.name}+tta{len(self.transforms)}"

    def __call__(self, tiles: np.ndarray, scale: Scale) -> np.ndarray:
        """Mean logits (B, classes, H, W) float32 over the transforms of raw (B, bands, H, W) tiles."""
        h, w = tiles.shape[-2:]
        if h != w and any(t.quarter_turns % 2 for t in self.transforms):
            raise InvalidInputError(f"TTA with quarter turns needs square tiles, got {h}x{w}")
        total: np.ndarray | None = None
        for t in self.transforms:
            # Contiguous copies: ONNX/OpenVINO engines take buffers, not numpy's negative-stride views.
            logits = t.invert(np.asarray(self.inner(np.ascontiguousarray(t.apply(tiles)), scale)))
            if total is None:
                total = logits.astype(np.float32, copy=True)
            else:
                total += logits
        assert total is not None  # __init__ refuses an empty list of transforms
        total /= len(self.transforms)
        return total


def with_tta(engine: Engine, mode: str, card: WeightsCard | Any | None = None) -> Engine:
    """``engine`` itself for ``none``, else a :class:`TTAEngine` over the transforms of ``mode``."""
    transforms = tta_transforms(mode, card)
    return engine if mode == "none" else TTAEngine(engine, transforms)
