import numpy as np
import pytest

from lale_geo.inference.engines import TorchEngine
from lale_geo.training.datasets import Sample
from lale_geo.training.evaluation import Tiling, bootstrap_interval, evaluate
from lale_geo.training.metrics import confusion_matrix, scores
from tests.helpers import LocalModel

MEAN, STD = (0.5,) * 3, (0.25,) * 3


def samples(n=4, size=150, seed=0):
    """Images whose class follows brightness, with noise, so that a per-pixel model is right on most."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        mask = (rng.random((size // 10, size // 10)) < 0.3 + 0.1 * i).repeat(10, 0).repeat(10, 1).astype(np.uint8)
        image = np.where(mask[None] == 1, 180, 60).astype(np.int16).repeat(3, 0)
        image = np.clip(image + rng.normal(0, 50, image.shape), 0, 255).astype(np.uint8)
        mask[:3] = 255  # unlabelled rows
        out.append(Sample(f"img{i}", image, mask))
    return out


def test_a_per_pixel_model_agrees_exactly_tiled_untiled_and_shifted():
    model = LocalModel(num_classes=2, radius=0)
    engine = TorchEngine(model, MEAN, STD, device="cpu")
    result = evaluate(engine, samples(), ["dark", "bright"], Tiling(64, 16, 4), mean=MEAN, whole_image=engine)
    assert result.agreement == {"tiled_vs_untiled": 1.0, "shifted_grid": 1.0, "shift_px": 200}


def test_per_image_per_tile_and_interval_are_consistent_with_the_pooled_score():
    engine = TorchEngine(LocalModel(num_classes=2, radius=1), MEAN, STD, device="cpu")
    data = samples()
    result = evaluate(engine, data, ["dark", "bright"], Tiling(64, 16, 4), mean=MEAN)
    assert set(result.per_image) == {s.name for s in data}
    assert 0 < min(result.per_image.values()) <= result.macro_f1 <= max(result.per_image.values()) <= 1
    low, high = result.macro_f1_ci95
    assert low <= result.macro_f1 <= high and high - low < 0.5
    tiles = result.per_tile
    assert tiles["tiles"] == len(data) * (150 // 64) ** 2 and tiles["p10"] <= tiles["median"] <= 1
    assert result.agreement is None  # only with a whole-image engine
    as_json = result.to_dict()
    assert as_json["per_class"]["dark"]["support"] == result.per_class["dark"].support > 0
    assert as_json["macro_f1"] == result.macro_f1


def test_bootstrap_interval_is_reproducible_and_narrows_with_more_images():
    rng = np.random.default_rng(1)

    def image_cms(n):
        cms = []
        for _ in range(n):
            truth = rng.integers(0, 2, 400)
            pred = np.where(rng.random(400) < 0.8, truth, 1 - truth)
            cms.append(confusion_matrix(pred, truth, 2))
        return cms

    few, many = image_cms(5), image_cms(80)
    assert bootstrap_interval(few, ["a", "b"]) == bootstrap_interval(few, ["a", "b"])
    width = [np.diff(bootstrap_interval(c, ["a", "b"]))[0] for c in (few, many)]
    assert width[1] < width[0]
    pooled = scores(sum(many), ["a", "b"])["macro_f1"]
    low, high = bootstrap_interval(many, ["a", "b"])
    assert low < pooled < high and pooled == pytest.approx(0.8, abs=0.03)
    assert bootstrap_interval(few[:1], ["a", "b"]) is None
