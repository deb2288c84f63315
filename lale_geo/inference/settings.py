"""Inference settings: what decides a map besides the scene, resolved once (weights loaded, tiling
completed from the card and checked) and used as they are by predict, plan, segment and evaluate."""

from __future__ import annotations

import contextlib
import contextvars
import difflib
import importlib.util
import json
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, fields, replace
from os import PathLike
from pathlib import Path
from typing import TypedDict

import numpy as np

from ..checksums import tensors_sha256
from ..errors import InvalidInputError, WeightsError
from ..weights import DEFAULT_WEIGHTS, ONNX_MODEL, verified_int8_model
from .engines import (
    ENGINES,
    Engine,
    LogProbabilities,
    ModelAndCard,
    block_engine,
    create_engine,
    device_type,
)
from .tta import TTA_MODES, tta_transforms, with_tta

PRECISIONS = ("auto", "fp32", "int8")
_KEPT_ENGINES: contextvars.ContextVar[dict | None] = contextvars.ContextVar("kept_engines", default=None)


@contextlib.contextmanager
def one_engine_for_all() -> Iterator[None]:
    """Inside the block, runs with the same weights and settings share one engine (many scenes in one
    process: the network is loaded, exported and compiled once)."""
    token = _KEPT_ENGINES.set({})
    try:
        yield
    finally:
        _KEPT_ENGINES.reset(token)


@dataclass(frozen=True)
class InferenceSettings:
    """The user's choices; None means "the weights card's default" (or, for ``bands`` and ``scale``,
    "decided from the scene").

    Attributes:
        weights: shipped weights name or a path to a card/safetensors pair.
        bands: 1-based input bands in the card's order.
        scale: raw (min, max) mapped to [0, 1], for every band.
        tile_size, overlap: tiling; a custom tile size keeps the card's overlap ratio.
        batch_size: tiles per engine call (static: the last batch is padded).
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        engine: ``auto``, ``torch``, ``onnxruntime`` or ``openvino``.
        tta: test-time augmentation, ``none``, ``flips`` (4 passes) or ``d4`` (8); logits are averaged.
        precision: ``fp32``, ``int8`` (the weights' INT8 OpenVINO model) or ``auto``: INT8 only where the
            card says that model passed its check against fp32 (lale_geo.training.quantize) and the run can use it
            (OpenVINO on the CPU, the card's tile size, shipped or local weights).
        strict_domain: refuse, instead of warning about, a scene unlike the weights' training data.
    """

    weights: str | None = None
    bands: tuple[int, ...] | None = None
    scale: tuple[float, float] | None = None
    tile_size: int | None = None
    overlap: int | None = None
    batch_size: int = 8
    device: str = "auto"
    engine: str = "auto"
    tta: str = "none"
    strict_domain: bool = False
    precision: str = "auto"

    def __post_init__(self) -> None:
        _check_types(self)
        # Normalise types so that settings compare and serialise the same however they were given.
        if self.weights is not None:
            object.__setattr__(self, "weights", str(self.weights))
        if self.bands is not None:
            object.__setattr__(self, "bands", tuple(int(b) for b in self.bands))
        if self.scale is not None:
            object.__setattr__(self, "scale", tuple(self.scale))
        if self.batch_size < 1:
            raise InvalidInputError(f"batch_size={self.batch_size}: must be at least 1")
        if self.engine not in ENGINES:
            raise InvalidInputError(f"engine={self.engine}: unknown; use one of {', '.join(ENGINES)}")
        if self.precision not in PRECISIONS:
            raise InvalidInputError(f"precision={self.precision}: unknown; use one of {', '.join(PRECISIONS)}")
        if self.tta not in TTA_MODES:
            raise InvalidInputError(f"tta={self.tta}: unknown; use one of {', '.join(TTA_MODES)}")

    def resolve(self, model: ModelAndCard | tuple | None = None) -> ResolvedSettings:
        """Load the weights (or take ``model``, an in-memory (model, card) pair) and complete the tiling.

        Where the run will use the weights' INT8 model, only their card is read: the network (and torch)
        is not needed."""
        pair = ModelAndCard.of(model) if model is not None else ModelAndCard.named(self.weights or DEFAULT_WEIGHTS)
        card = pair.card
        if card.num_classes > 255:
            raise InvalidInputError(f"{card.name}: more than 255 classes do not fit a uint8 map with nodata 255")
        overlap = self.overlap
        if overlap is None:
            overlap = card.overlap if self.tile_size is None else card.overlap * self.tile_size // card.tile_size
        tile_size = self.tile_size or card.tile_size
        if not 0 <= overlap < tile_size:
            raise InvalidInputError(f"overlap={overlap}: must be below the tile size ({tile_size})")
        tta_transforms(self.tta, card)  # refuses transforms the weights were not trained with
        resolved = replace(self, weights=None if model is not None else (self.weights or DEFAULT_WEIGHTS),
                           tile_size=tile_size, overlap=overlap)
        resolved = replace(resolved, precision=resolved._decide_precision(card))
        if card.model == ONNX_MODEL:  # another tool's graph: OpenVINO runs it as it is
            if model is not None:  # the engine reads the graph from its file: the settings keep only its path
                raise InvalidInputError(f"{card.name}: an ONNX model runs from its file; pass it as weights=PATH, "
                                        "not as model=")
            if self.engine not in ("auto", "openvino") or device_type(self.device) != "cpu":
                raise InvalidInputError(f"{self.weights}: an ONNX model runs on OpenVINO on the CPU; use engine "
                                        "auto or openvino and device cpu")
        elif resolved.precision == "fp32":  # load now: a bad weights file fails here, before any output
            multiple = getattr(pair.model, "size_multiple", 32)
            if tile_size % multiple:
                raise InvalidInputError(f"tile_size={tile_size}: must be a multiple of {multiple} for {card.model}")
        return ResolvedSettings(resolved, pair)

    def _decide_precision(self, card) -> str:
        """``fp32`` or ``int8`` for these (resolved) settings: ``int8`` is refused with the reason when it
        cannot run, ``auto`` falls back to fp32 then."""
        why_not = None
        if not card.int8:
            why_not = "the weights have no INT8 model"
        elif self.weights is None:
            why_not = "the weights are an in-memory model (the INT8 model lives beside weights files)"
        elif self.engine not in ("auto", "openvino") or device_type(self.device) != "cpu":
            why_not = "the INT8 model runs on OpenVINO on the CPU"
        elif not importlib.util.find_spec("openvino"):
            why_not = "openvino is not installed"
        elif self.tile_size != card.int8.get("tile_size"):
            why_not = f"the INT8 model was made for {card.int8.get('tile_size')} px tiles"
        elif self.batch_size % card.int8.get("batch", 1):
            why_not = f"the INT8 model runs batches of a multiple of {card.int8.get('batch')}"
        if self.precision == "int8" and why_not:
            raise InvalidInputError(f"precision=int8: {why_not}; use precision=fp32")
        if self.precision == "auto" and (why_not or not card.int8.get("passed")):
            return "fp32"
        if self.precision == "auto":
            assert self.weights is not None  # else why_not above
            try:  # a damaged INT8 file: auto says so and runs the fp32 network instead
                verified_int8_model(self.weights, card)
            except WeightsError as e:
                warnings.warn(f"{e}; running fp32 instead of the INT8 model (precision auto)", stacklevel=3)
                return "fp32"
        return "int8" if self.precision in ("int8", "auto") else "fp32"


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _check_types(s: InferenceSettings) -> None:
    """Each setting of the type it must have, as one-line errors naming it (not a TypeError from deep in
    the run)."""
    def bad(name: str, what: str) -> InvalidInputError:
        return InvalidInputError(f"{name}={getattr(s, name)!r}: must be {what}")

    if s.weights is not None and not isinstance(s.weights, (str, PathLike)):
        raise bad("weights", "a shipped weights name or a path")
    if s.bands is not None:
        if isinstance(s.bands, (str, bytes)) or not isinstance(s.bands, Sequence) or not s.bands:
            raise bad("bands", "a list of 1-based band numbers, e.g. [3, 2, 1]")
        if not all(_is_int(b) and b >= 1 for b in s.bands):
            raise bad("bands", "1-based band numbers (the first band is 1), e.g. [3, 2, 1]")
    if s.scale is not None:
        if isinstance(s.scale, (str, bytes)) or not isinstance(s.scale, Sequence) or len(s.scale) != 2:
            raise bad("scale", "(min, max): two numbers, or two lists with one number per band")
        for v in s.scale:
            values = v if isinstance(v, Sequence) and not isinstance(v, str) else [v]
            if not values or not all(_is_number(x) for x in values):
                raise bad("scale", "(min, max): two numbers, or two lists with one number per band")
    for name in ("tile_size", "overlap"):
        value = getattr(s, name)
        if value is not None and (not _is_int(value) or value < (1 if name == "tile_size" else 0)):
            raise bad(name, "a whole number of pixels" + (" above 0" if name == "tile_size" else " (0 or more)"))
    if not _is_int(s.batch_size):
        raise bad("batch_size", "a whole number of tiles")
    for name in ("device", "engine", "tta", "precision"):
        if not isinstance(getattr(s, name), str):
            raise bad(name, "a string")
    if not isinstance(s.strict_domain, (bool, np.bool_)):
        raise bad("strict_domain", "True or False")


def settings_with(settings: InferenceSettings | None, options: dict) -> InferenceSettings:
    """``settings`` (or the defaults) with ``options`` replacing single fields; an option that is not a
    field is an InvalidInputError naming it and the nearest field."""
    if settings is not None and not isinstance(settings, InferenceSettings):
        raise InvalidInputError(f"settings={settings!r}: must be an InferenceSettings (or pass options by name)")
    known = [f.name for f in fields(InferenceSettings)]
    for name in options:
        if name not in known:
            near = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean {near[0]}?" if near else f"; options are {', '.join(known)}"
            raise InvalidInputError(f"{name}=: unknown option{hint}")
    return replace(settings or InferenceSettings(), **options)


class _EngineOptions(TypedDict):
    """The keyword arguments of create_engine and block_engine that the settings decide."""

    device: str
    batch_size: int
    tile_size: int
    int8_model: Path | None


@dataclass(frozen=True)
class ResolvedSettings:
    """Settings with every default filled in, and the loaded network. ``settings.weights`` is None for
    an in-memory model (workers then get the model itself, not a name to load)."""

    settings: InferenceSettings
    model: ModelAndCard

    @property
    def card(self):
        return self.model.card

    @property
    def tile_size(self) -> int:
        assert self.settings.tile_size is not None  # resolve() fills it in
        return self.settings.tile_size

    @property
    def overlap(self) -> int:
        assert self.settings.overlap is not None  # resolve() fills it in
        return self.settings.overlap

    @property
    def batch_size(self) -> int:
        return self.settings.batch_size

    def create_engine(self, block: bool = False) -> Engine:
        """The engine these settings ask for (test-time augmentation included), using every core; with
        ``block``, the engine of a Dask task (see :func:`lale_geo.inference.engines.block_engine`). Inside
        :func:`one_engine_for_all`, the engine an earlier call made for the same tensors and settings."""
        s = self.settings
        if self.card.model == ONNX_MODEL:  # a graph file from another tool: probabilities out, their log in
            assert s.weights is not None  # resolve() refuses an in-memory one
            options = _EngineOptions(device=s.device, batch_size=s.batch_size, tile_size=self.tile_size,
                                     int8_model=Path(s.weights))
            make = block_engine if block else create_engine
            return with_tta(LogProbabilities(make("openvino", self.model, **options)), s.tta, self.card)
        if s.precision == "int8":
            assert s.weights is not None  # resolve() decides int8 only for weights by name or path
            int8 = verified_int8_model(s.weights, self.card)
        else:
            int8 = None
        options = _EngineOptions(device=s.device, batch_size=s.batch_size, tile_size=self.tile_size, int8_model=int8)
        if block:
            return with_tta(block_engine(s.engine, self.model, **options), s.tta, self.card)
        kept = _KEPT_ENGINES.get()
        if kept is None:
            return with_tta(create_engine(s.engine, self.model, **options), s.tta, self.card)
        tensors = str(int8) if int8 is not None else tensors_sha256(self.model[0])
        key = (s.engine, tensors, tuple(self.card.mean), tuple(self.card.std), s.device, s.batch_size,
               s.tile_size, s.tta)
        if key not in kept:
            kept[key] = with_tta(create_engine(s.engine, self.model, **options), s.tta, self.card)
        return kept[key]

    def to_json(self) -> str:
        """The settings as recorded in outputs (the weights by name and checksum)."""
        fields = asdict(self.settings)
        fields["weights"] = fields["weights"] and Path(fields["weights"]).name
        fields["weights_sha256"] = self.card.sha256
        return json.dumps(fields, sort_keys=True)
