import numpy as np
import pytest

from lale_geo.training.augment import jittered_size, photometric, resample


def test_jittered_sizes_stay_in_range_and_zoom_both_ways():
    rng = np.random.default_rng(0)
    sizes = np.array([jittered_size(256, 0.5, rng) for _ in range(2000)])
    assert sizes.min() >= round(256 / 1.5) - 1 and sizes.max() <= round(256 * 1.5) + 1
    assert (sizes < 256).mean() == pytest.approx(0.5, abs=0.05)
    assert jittered_size(256, 0.0, rng) == 256


def test_resample_keeps_labels_aligned_with_pixels():
    mask = np.zeros((300, 300), np.uint8)
    mask[:, 150:] = 1
    mask[:10, :10] = 255
    image = np.where(mask[None] == 1, 0.9, 0.1).astype(np.float32).repeat(3, 0)
    small_image, small_mask = resample(image, mask, 100)
    assert small_image.shape == (3, 100, 100) and small_mask.shape == (100, 100)
    assert set(np.unique(small_mask)) <= {0, 1, 255}  # nearest: no blended class ids
    inside = small_mask != 255
    assert ((small_image.mean(0) > 0.5) == (small_mask == 1))[inside].mean() > 0.98


def test_photometric_stays_in_unit_range_and_changes_pixels():
    rng = np.random.default_rng(1)
    image = np.random.default_rng(2).random((3, 64, 64), dtype=np.float32)
    changed = 0
    for _ in range(50):
        out = photometric(image, rng, strong=True)
        assert out.shape == image.shape and out.min() >= 0 and out.max() <= 1
        changed += not np.allclose(out, image)
    assert changed > 40
