"""Test-time augmentation: exact against a per-pixel model, exact mean of the passes otherwise."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from lale_geo.errors import InvalidInputError
from lale_geo.inference.tta import TTA_MODES, TTAEngine, tta_cost, tta_transforms, with_tta
from tests.helpers import LocalModel, card_for


class ModelEngine:
    """A minimal torch engine (the engine interface, without depending on lale_geo.inference.engines)."""

    name = "model"

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model.eval()
        self.num_classes = model.num_classes

    @torch.inference_mode()
    def __call__(self, tiles: np.ndarray, scale: tuple) -> np.ndarray:
        lo, hi = scale
        x = torch.from_numpy(np.clip((tiles.astype(np.float32) - lo) / (hi - lo), 0, 1))
        return self.model(x).numpy()


class RampEngine:
    """Logits that depend on the pixel's position (x and y) as well as its values: not equivariant under
    any flip or turn, so TTA must change the output, by exactly the mean of the transformed passes."""

    name = "ramp"
    num_classes = 3

    def __init__(self) -> None:
        self.shapes: list[tuple[int, ...]] = []

    def __call__(self, tiles: np.ndarray, scale: tuple) -> np.ndarray:
        assert tiles.flags.c_contiguous  # what buffer-based (ONNX/OpenVINO) engines need
        self.shapes.append(tiles.shape)
        b, _, h, w = tiles.shape
        y, x = np.mgrid[0:h, 0:w].astype(np.float32)
        pixels = tiles.astype(np.float32) / scale[1]
        c = np.arange(self.num_classes, dtype=np.float32).reshape(1, -1, 1, 1)
        return (pixels[:, :1] * (c + 1) + pixels[:, 1:2] * x / w - c * y / h + 0.5 * c * x).astype(np.float32)


def tiles(shape=(3, 3, 32, 32), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape).astype(np.uint8)


@pytest.mark.parametrize("mode", TTA_MODES)
def test_tta_of_a_per_pixel_model_equals_the_plain_output(mode):
    plain = ModelEngine(LocalModel(num_classes=4, radius=0))
    batch = tiles()
    engine = with_tta(plain, mode, card_for(4))
    np.testing.assert_allclose(engine(batch, (0, 255)), plain(batch, (0, 255)), atol=1e-5, rtol=0)


def _by_hand(engine, batch, mode):
    """The TTA mean written out with numpy's flips and turns, independently of lale_geo.inference.tta."""
    f = lambda x: engine(np.ascontiguousarray(x), (0, 255))  # noqa: E731
    fx, fy = (lambda a: np.flip(a, -1)), (lambda a: np.flip(a, -2))
    rot = lambda a, k: np.rot90(a, k, axes=(-2, -1))  # noqa: E731
    if mode == "flips":
        passes = [f(batch), fx(f(fx(batch))), fy(f(fy(batch))), fy(fx(f(fx(fy(batch)))))]
    else:
        passes = [rot(f(rot(batch, k)), -k) for k in range(4)]
        passes += [fx(rot(f(rot(fx(batch), k)), -k)) for k in range(4)]
    return np.mean(passes, axis=0)


@pytest.mark.parametrize("mode", ["flips", "d4"])
def test_tta_is_the_mean_of_the_inverse_transformed_passes(mode):
    inner, batch = RampEngine(), tiles((2, 3, 16, 16), seed=1)
    out = with_tta(inner, mode, card_for(3))(batch, (0, 255))
    expected = _by_hand(RampEngine(), batch, mode)
    np.testing.assert_allclose(out, expected, atol=1e-5, rtol=0)
    assert np.abs(out - inner(batch, (0, 255))).max() > 0.1  # the model is not equivariant: TTA shows
    assert out.dtype == np.float32 and out.shape == (2, 3, 16, 16)


@pytest.mark.parametrize("mode", ["flips", "d4"])
def test_every_pass_keeps_the_batch_shape(mode):
    inner = RampEngine()
    with_tta(inner, mode)(tiles((5, 3, 24, 24)), (0, 255))
    assert inner.shapes == [(5, 3, 24, 24)] * tta_cost(mode)


def test_name_classes_and_cost():
    inner = RampEngine()
    assert with_tta(inner, "none") is inner
    engine = with_tta(inner, "d4")
    assert isinstance(engine, TTAEngine) and engine.name == "ramp+tta8" and engine.num_classes == 3
    assert with_tta(inner, "flips").name == "ramp+tta4"
    assert [tta_cost(m) for m in TTA_MODES] == [1, 4, 8]
    with pytest.raises(InvalidInputError, match="unknown TTA mode"):
        tta_cost("d8")


def test_d4_refused_for_weights_not_trained_with_rot90():
    card = dataclasses.replace(card_for(3), training={"rot90": False})
    with pytest.raises(InvalidInputError, match="not trained with rot90"):
        tta_transforms("d4", card)
    assert len(tta_transforms("flips", card)) == 4  # flips are still fine
    assert len(tta_transforms("d4", card_for(3))) == 8  # key absent: today's cards, trained with rot90
    assert len(tta_transforms("d4", dataclasses.replace(card, training={"rot90": True}))) == 8
    no_flips = dataclasses.replace(card, training={"flips": False})
    with pytest.raises(InvalidInputError, match="not trained with flips"):
        tta_transforms("flips", no_flips)


def test_quarter_turns_need_square_tiles():
    with pytest.raises(InvalidInputError, match="square"):
        with_tta(RampEngine(), "d4")(tiles((1, 3, 16, 24)), (0, 255))
    assert with_tta(RampEngine(), "flips")(tiles((1, 3, 16, 24)), (0, 255)).shape == (1, 3, 16, 24)
