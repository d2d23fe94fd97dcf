"""Validation mAP (VOC 2007, 11-point) on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from sagemaker_cv.algorithms.detection.evaluation import VOC07MeanAP, iou

A = [0.1, 0.1, 0.5, 0.5]
B = [0.5, 0.5, 0.9, 0.9]
NONE = [-1, -1, -1, -1, -1, -1]


def detections(*images):
    most = max(len(rows) for rows in images)
    return np.array([list(rows) + [NONE] * (most - len(rows)) for rows in images], dtype=np.float32)


def test_iou():
    assert iou(np.array([A]), np.array([A, B, [0.3, 0.1, 0.7, 0.5]]))[0] == pytest.approx([1.0, 0.0, 1 / 3])


def test_a_duplicate_is_a_false_positive_and_classes_without_objects_do_not_count():
    metric = VOC07MeanAP(0.5)
    gt_boxes = np.array([[A], [B]], np.float32)
    gt_ids = np.array([[0], [0]], np.float32)
    found = detections(
        [
            [0, 0.9, *A],
            [0, 0.8, 0.1, 0.1, 0.5, 0.52],
            [1, 0.95, *B],
        ],  # a hit, its duplicate, class 1 has no objects
        [[0, 0.7, *A]],  # misses B
    )
    metric.update(found, gt_boxes, gt_ids)
    # Scores 0.9 (hit), 0.8 (duplicate), 0.7 (miss): recall stays at 1/2 with precision 1 at its
    # best, so 6 of the 11 recall points (0, 0.1, ..., 0.5) score 1.
    assert metric.value() == pytest.approx(6 / 11)


def test_batches_accumulate_and_a_class_never_detected_scores_zero():
    metric = VOC07MeanAP(0.5)
    metric.update(detections([[0, 0.9, *A]]), np.array([[A, B]], np.float32), np.array([[0, 1]], np.float32))
    metric.update(detections([[1, 0.2, *B]]), np.array([[B]], np.float32), np.array([[1]], np.float32))
    # Class 0: its one object found first, AP 1. Class 1: one of its two objects found, AP 6/11.
    assert metric.value() == pytest.approx((1 + 6 / 11) / 2)
    threshold = VOC07MeanAP(0.9)
    threshold.update(
        detections([[0, 0.9, 0.1, 0.1, 0.5, 0.55]]), np.array([[A]], np.float32), np.array([[0]], np.float32)
    )
    assert threshold.value() == 0.0  # IoU 0.89 is below overlap_threshold 0.9


def test_padding_is_ignored_and_no_objects_at_all_is_zero():
    metric = VOC07MeanAP(0.5)
    metric.update(
        detections([NONE]), np.array([[[-1, -1, -1, -1]]], np.float32), np.array([[-1]], np.float32)
    )
    assert metric.value() == 0.0
