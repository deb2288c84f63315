import numpy as np
import pytest

from lale_geo.training.metrics import confusion_matrix, scores


def test_confusion_matrix_counts_and_skips_ignore():
    target = np.array([0, 0, 1, 1, 2, 255])
    pred = np.array([0, 1, 1, 1, 0, 2])
    np.testing.assert_array_equal(confusion_matrix(pred, target, 3), [[1, 1, 0], [0, 2, 0], [1, 0, 0]])


def test_scores_against_hand_computation():
    cm = np.array([[1, 1, 0], [0, 2, 0], [1, 0, 0]])
    s = scores(cm, ["a", "b", "c"])
    # class a: tp 1, fp 1, fn 1 -> P 0.5, R 0.5, F1 0.5, IoU 1/3; b: tp 2, fp 1, fn 0 -> F1 0.8, IoU 2/3
    assert s["per_class"]["a"]["f1"] == pytest.approx(0.5)
    assert s["per_class"]["a"]["iou"] == pytest.approx(1 / 3)
    assert s["per_class"]["b"]["precision"] == pytest.approx(2 / 3)
    assert s["per_class"]["b"]["f1"] == pytest.approx(0.8)
    assert s["per_class"]["c"]["f1"] == 0.0
    assert s["macro_f1"] == pytest.approx((0.5 + 0.8 + 0) / 3)
    assert s["miou"] == pytest.approx((1 / 3 + 2 / 3 + 0) / 3)
    assert s["pixel_accuracy"] == pytest.approx(3 / 5)


def test_class_absent_everywhere_is_left_out_of_macro_average():
    s = scores(np.array([[3, 0], [0, 0]]))
    assert s["macro_f1"] == 1.0 and np.isnan(s["per_class"]["1"]["f1"])
