"""Validation mAP: PASCAL VOC 2007 (11-point interpolated average precision, averaged over the
classes that have ground-truth objects) at IoU `overlap_threshold`, on corners normalised to [0, 1].

GluonCV's VOC07MApMetric is not used: it adds one pixel to every xmax and ymax (VOC's inclusive
integer boxes), which on normalised corners would make every box a unit larger. Plain numpy.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of a (n, 4) with every box of b (m, 4), corners (xmin, ymin, xmax, ymax)."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-12)


def eleven_point_ap(hits: np.ndarray, scores: np.ndarray, positives: int) -> float:
    """AP from the detections of one class (1 = matched an object, 0 = false positive)."""
    order = np.argsort(-scores, kind="stable")
    tp = np.cumsum(hits[order])
    recall = tp / positives
    precision = tp / np.arange(1, len(tp) + 1)
    return float(
        np.mean([precision[recall >= t].max() if np.any(recall >= t) else 0.0 for t in np.linspace(0, 1, 11)])
    )


class VOC07MeanAP:
    """Accumulates batches of detections and ground truth; `value()` is the mAP so far."""

    def __init__(self, iou_threshold: float):
        self.iou_threshold = iou_threshold
        self.scores: dict[int, list[float]] = defaultdict(list)
        self.hits: dict[int, list[int]] = defaultdict(list)
        self.positives: dict[int, int] = defaultdict(int)

    def update(self, detections: np.ndarray, gt_boxes: np.ndarray, gt_ids: np.ndarray) -> None:
        """detections (B, K, 6): [class, score, xmin, ymin, xmax, ymax], class -1 for none;
        gt_boxes (B, M, 4) and gt_ids (B, M), -1 for padding."""
        for rows, boxes, ids in zip(detections, gt_boxes, gt_ids):
            rows, boxes, ids = rows[rows[:, 0] >= 0], boxes[ids >= 0], ids[ids >= 0]
            for cls in set(rows[:, 0].astype(int)) | set(ids.astype(int)):
                self._update_class(cls, rows[rows[:, 0] == cls], boxes[ids == cls])

    def _update_class(self, cls: int, rows: np.ndarray, truth: np.ndarray) -> None:
        self.positives[cls] += len(truth)
        rows = rows[np.argsort(-rows[:, 1], kind="stable")]
        self.scores[cls].extend(rows[:, 1].tolist())
        if not len(truth):
            self.hits[cls].extend([0] * len(rows))
            return
        overlaps = iou(rows[:, 2:6], truth)
        taken = np.zeros(len(truth), bool)
        for best, value in zip(overlaps.argmax(axis=1), overlaps.max(axis=1)):
            hit = value >= self.iou_threshold and not taken[best]
            taken[best] |= hit
            self.hits[cls].append(int(hit))

    def value(self) -> float:
        aps = [
            eleven_point_ap(np.array(self.hits[c], float), np.array(self.scores[c]), n)
            for c, n in self.positives.items()
            if n
        ]
        return float(np.mean(aps)) if aps else 0.0
