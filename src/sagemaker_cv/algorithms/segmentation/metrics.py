"""Pixel accuracy and mean IoU from a confusion matrix (numpy only).

mIOU is the mean, over the classes that occur in the labels or in the predictions of the whole
validation set, of intersection / union. Classes that occur in neither are left out (their IoU is
undefined), unlike GluonCV's `SegmentationMetric`, which counts them as 0 and also merges the last
two classes into one histogram bin. Pixels labelled 255 count nowhere.
"""

from __future__ import annotations

import numpy as np

from sagemaker_cv.algorithms.segmentation.labels import IGNORE


class Confusion:
    """Counts of (label, prediction) pairs over every scored pixel."""

    def __init__(self, num_classes: int):
        self.num_classes = num_classes
        self.matrix = np.zeros((num_classes, num_classes), dtype=np.int64)

    def update(self, labels: np.ndarray, predictions: np.ndarray) -> None:
        """Add a batch: class indices of the same shape (labels may hold 255)."""
        labels = labels.astype(np.int64, copy=False).ravel()
        predictions = predictions.astype(np.int64, copy=False).ravel()
        keep = labels != IGNORE
        n = self.num_classes
        self.matrix += np.bincount(labels[keep] * n + predictions[keep], minlength=n * n).reshape(n, n)

    def pixel_accuracy(self) -> float:
        total = self.matrix.sum()
        return float(np.trace(self.matrix) / total) if total else 0.0

    def iou(self) -> np.ndarray:
        """Per-class IoU; NaN for a class absent from labels and predictions."""
        inter = np.diag(self.matrix).astype(np.float64)
        union = self.matrix.sum(axis=0) + self.matrix.sum(axis=1) - inter
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(union > 0, inter / np.maximum(union, 1), np.nan)

    def mean_iou(self) -> float:
        iou = self.iou()
        return float(np.nanmean(iou)) if np.isfinite(iou).any() else 0.0
