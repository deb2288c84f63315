"""A network with its weights card, loaded lazily: a run of the weights' INT8 model reads only the card."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import InvalidInputError
from ...weights import WeightsCard, load_card_once, load_weights_once
from ..onnx_models import is_onnx_model, onnx_card

if TYPE_CHECKING:
    from torch import nn


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
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and callable(pair[0])
                and isinstance(pair[1], WeightsCard)):
            raise InvalidInputError(f"model={_short(pair)}: must be a (network, WeightsCard) pair, e.g. "
                                    "lale_geo.weights.random_weights() or load_weights(...)")
        return cls(*pair)

    @property
    def model(self) -> nn.Module:
        if self._model is None:
            assert self._weights is not None  # __init__ refuses a pair with neither model nor weights
            self._model = load_weights_once(self._weights)[0]
        return self._model

    def __iter__(self) -> Iterator[Any]:
        return iter((self.model, self.card))

    def __getitem__(self, index: int) -> Any:
        return self.card if index in (1, -1) else (self.model, self.card)[index]

    def __len__(self) -> int:
        return 2
