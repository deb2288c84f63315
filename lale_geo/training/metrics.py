"""Segmentation metrics from a pooled confusion matrix (pure numpy)."""

from __future__ import annotations

import numpy as np

IGNORE_INDEX = 255  # label of pixels left out of losses and scores (unlabelled, nodata)


def confusion_matrix(pred: np.ndarray, target: np.ndarray, num_classes: int) -> np.ndarray:
    """(num_classes, num_classes) counts, rows = true class, columns = predicted; ignore pixels skipped."""
    valid = target != IGNORE_INDEX
    index = target[valid].astype(np.int64) * num_classes + pred[valid].astype(np.int64)
    return np.bincount(index, minlength=num_classes**2).reshape(num_classes, num_classes)


def scores(cm: np.ndarray, class_names: list[str] | None = None) -> dict:
    """Per-class IoU, F1, precision, recall; macro F1, mIoU and pixel accuracy.

    Classes absent from both truth and prediction get NaN per-class scores and are left out of the
    macro averages.
    """
    cm = cm.astype(np.float64)
    tp = np.diag(cm)
    fp = cm.sum(0) - tp
    fn = cm.sum(1) - tp
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = tp / (tp + fp)
        recall = tp / (tp + fn)
        f1 = 2 * tp / (2 * tp + fp + fn)
        iou = tp / (tp + fp + fn)
    names = class_names or [str(i) for i in range(len(cm))]
    return {
        "pixel_accuracy": float(tp.sum() / cm.sum()) if cm.sum() else float("nan"),
        "macro_f1": float(np.nanmean(f1)),
        "miou": float(np.nanmean(iou)),
        "per_class": {
            n: {"iou": float(iou[i]), "f1": float(f1[i]), "precision": float(precision[i]),
                "recall": float(recall[i]), "support": int(cm[i].sum())}
            for i, n in enumerate(names)
        },
        "confusion_matrix": cm.astype(np.int64).tolist(),
    }
