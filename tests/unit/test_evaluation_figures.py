"""Tier: fast. The per-class figures of `sagemaker-cv evaluate`, against independent computations
written here (plain loops over the predictions, and cases worked by hand)."""

from __future__ import annotations

import numpy as np
import pytest

from sagemaker_cv.algorithms.classification import evaluation as classification
from sagemaker_cv.algorithms.detection.evaluation import DetectionSet, VOC07MeanAP, hundred_one_point_ap
from sagemaker_cv.algorithms.detection.evaluation import report as detection_report
from sagemaker_cv.algorithms.segmentation import evaluation as segmentation
from sagemaker_cv.algorithms.segmentation.metrics import Confusion
from sagemaker_cv.tools.evaluate import format_report


def test_classification_figures_agree_with_counting_by_hand():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 4, 200)
    scores = rng.normal(size=(200, 4)) + 1.5 * np.eye(4)[labels]  # better than chance
    got = classification.report(scores, labels, multi_label=False, top_k=None)
    predicted = scores.argmax(axis=1)
    for c, row in enumerate(got["classes"]):
        tp = sum(1 for p, t in zip(predicted, labels) if p == c and t == c)
        fp = sum(1 for p, t in zip(predicted, labels) if p == c and t != c)
        fn = sum(1 for p, t in zip(predicted, labels) if p != c and t == c)
        precision, recall = tp / (tp + fp), tp / (tp + fn)
        assert row["precision"] == pytest.approx(precision)
        assert row["recall"] == pytest.approx(recall)
        assert row["f1"] == pytest.approx(2 * precision * recall / (precision + recall))
        assert row["support"] == tp + fn
        assert got["confusion_matrix"][c] == [
            sum(1 for p, t in zip(predicted, labels) if t == c and p == j) for j in range(4)
        ]
    assert got["figures"]["accuracy"] == pytest.approx(np.mean(predicted == labels))
    top3 = [t in sorted(range(4), key=lambda j: -s[j])[:3] for s, t in zip(scores, labels)]
    assert got["figures"]["top_3_accuracy"] == pytest.approx(np.mean(top3))


def test_classification_undefined_figures_are_none_and_top_k_follows_the_job():
    scores = np.array([[2.0, 1.0, 0.0], [2.0, 0.0, 1.0], [0.0, 2.0, 1.0]])
    got = classification.report(scores, np.array([0, 1, 1]), multi_label=False, top_k=2)
    # class 2 is neither true nor predicted anywhere; class 1 is predicted once, rightly
    assert got["classes"][2] == {"class": 2, "precision": None, "recall": None, "f1": None, "support": 0}
    assert got["classes"][1] == {
        "class": 1,
        "precision": 1.0,
        "recall": 0.5,
        "f1": pytest.approx(2 / 3),
        "support": 2,
    }
    # the second image (class 1) has its true class last: outside the top 2
    assert got["figures"] == {"accuracy": pytest.approx(2 / 3), "top_2_accuracy": pytest.approx(2 / 3)}


def test_multi_label_decides_each_class_by_the_training_rule():
    logits = np.array([[1.0, -1.0], [0.5, 0.2], [-0.3, 2.0]])
    truth = np.array([[1, 0], [0, 1], [1, 1]])
    got = classification.report(logits, truth, multi_label=True, top_k=None)
    assert got["figures"]["accuracy"] == pytest.approx(4 / 6)
    assert got["classes"][0] == {"class": 0, "precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert got["classes"][1] == {"class": 1, "precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 2}
    assert "confusion_matrix" not in got


def det(cls, score, box):
    return [cls, score, *box]


def test_detection_per_class_ap_worked_by_hand():
    # class 0: two objects; detections 0.9 (hit), 0.8 (miss), 0.7 (hit): precision 1, 1/2, 2/3 at
    # recall 1/2, 1/2, 1. VOC07 11 points: 1.0 for t <= 0.5 (6 points), 2/3 for t > 0.5 (5 points).
    # class 1: one object, found by its only detection: AP 1.
    pad = [-1, 0, 0, 0, 0, 0]
    detections = np.array(
        [
            [
                det(0, 0.9, (0.1, 0.1, 0.3, 0.3)),
                det(0, 0.8, (0.6, 0.6, 0.7, 0.7)),
                det(1, 0.5, (0.5, 0.1, 0.9, 0.4)),
            ],
            [det(0, 0.7, (0.2, 0.2, 0.5, 0.5)), pad, pad],
        ]
    )
    boxes = np.array([[[0.1, 0.1, 0.3, 0.3], [0.5, 0.1, 0.9, 0.4]], [[0.2, 0.2, 0.5, 0.5], [0, 0, 0, 0]]])
    ids = np.array([[0, 1], [0, -1]])
    found = DetectionSet()
    found.update(detections, boxes, ids)
    got = detection_report(found, 0.5)
    ap0 = (6 * 1.0 + 5 * 2 / 3) / 11
    assert [(r["class"], r["AP"], r["objects"]) for r in got["classes"]] == [
        (0, pytest.approx(ap0), 2),
        (1, 1.0, 1),
    ]
    # their mean is the validation metric's mAP, on the same batches
    metric = VOC07MeanAP(0.5)
    metric.update(detections, boxes, ids)
    assert (
        got["figures"]["mAP@0.5 (VOC07 11-point)"]
        == pytest.approx(metric.value())
        == pytest.approx((ap0 + 1) / 2)
    )
    # exact boxes match at every COCO threshold: 101-point AP of (1, 1/2, 2/3) at recall (1/2, 1/2, 1)
    coco0 = (51 * 1.0 + 50 * 2 / 3) / 101
    assert [r["AP@[.5:.95]"] for r in got["classes"]] == [pytest.approx(coco0), 1.0]


def independent_coco(images, cls):
    """AP@[.5:.95] of one class written from COCO's description: per threshold, detections by
    score take the best-overlapping unmatched object; precision made monotone; 101 recall points."""

    def overlap(a, b):
        w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        inter = w * h
        return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)

    aps = []
    for t in [0.5 + 0.05 * i for i in range(10)]:
        marks, total = [], 0
        for rows, boxes, ids, _ in images:  # no difficult objects here
            truth = [b for b, i in zip(boxes, ids) if i == cls]
            total += len(truth)
            used = [False] * len(truth)
            for r in sorted((r for r in rows if r[0] == cls), key=lambda r: -r[1]):
                best, which = t, None
                for j, b in enumerate(truth):
                    if not used[j] and overlap(r[2:], b) >= best:
                        best, which = overlap(r[2:], b), j
                if which is not None:
                    used[which] = True
                marks.append((r[1], which is not None))
        marks.sort(key=lambda m: -m[0])
        tp = 0
        curve = []
        for n, (_, hit) in enumerate(marks, 1):
            tp += hit
            curve.append((tp / total, tp / n))
        points = []
        for r in [i / 100 for i in range(101)]:
            reachable = [p for rc, p in curve if rc >= r - 1e-12]
            points.append(max(reachable) if reachable else 0.0)
        aps.append(sum(points) / 101)
    return sum(aps) / 10


def test_detection_coco_style_ap_agrees_with_an_independent_computation():
    rng = np.random.default_rng(7)
    found = DetectionSet()
    for _ in range(6):
        objects = rng.integers(1, 4)
        corners = rng.uniform(0, 0.5, (objects, 2))
        boxes = np.concatenate([corners, corners + rng.uniform(0.1, 0.4, (objects, 2))], axis=1)
        ids = rng.integers(0, 2, objects)
        rows = []
        for box, cls in zip(boxes, ids):  # a jittered detection per object, and a stray one
            rows.append(det(cls, rng.uniform(), box + rng.normal(0, 0.03, 4)))
        rows.append(det(rng.integers(0, 2), rng.uniform(), (0.6, 0.6, 0.9, 0.9)))
        found.update(np.array([rows]), boxes[None], ids[None])
    got = found.coco()
    for cls in (0, 1):
        assert got[cls] == pytest.approx(independent_coco(found.images, cls), abs=1e-9)
    assert 0 < got[0] < 1


def test_hundred_one_point_ap_of_a_perfect_and_an_empty_ranking():
    assert hundred_one_point_ap(np.array([1.0, 1.0]), np.array([0.9, 0.8]), 2) == 1.0
    assert hundred_one_point_ap(np.array([]), np.array([]), 3) == 0.0


def test_segmentation_figures_from_the_confusion_matrix():
    confusion = Confusion(3)
    labels = np.array([[0, 0, 1, 255], [1, 1, 0, 0]])
    predicted = np.array([[0, 1, 1, 2], [1, 0, 0, 0]])
    confusion.update(labels, predicted)
    got = segmentation.report(confusion)
    # class 0: 4 labelled, 3 right, predicted 4 times -> IoU 3 / 5; class 1: 3 labelled, 2 right,
    # predicted 3 times -> IoU 2 / 4; class 2: only on an ignored pixel -> no IoU, out of the mean
    assert [r["IoU"] for r in got["classes"]] == [pytest.approx(0.6), 0.5, None]
    assert [r["pixels"] for r in got["classes"]] == [4, 3, 0]
    assert [r["pixel_accuracy"] for r in got["classes"]] == [0.75, pytest.approx(2 / 3), None]
    assert got["figures"] == {"pixel_accuracy": pytest.approx(5 / 7), "mIOU": pytest.approx(0.55)}


def test_the_table_shows_every_figure():
    report = {
        "algorithm": "semantic-segmentation",
        "model": "model.tar.gz",
        "channel": "validation",
        "samples": 4,
        "validation": {"pixel_accuracy": 0.5, "mIOU": 0.25},
        "figures": {"mIOU": 0.25},
        "classes": [{"class": 0, "IoU": 0.5, "pixels": 10}, {"class": 1, "IoU": None, "pixels": 0}],
        "confusion_matrix": [[10, 0], [0, 0]],
    }
    text = format_report(report)
    assert "  mIOU: 0.2500" in text
    assert "class     IoU  pixels\n    0  0.5000      10\n    1       -       0" in text
    assert "true \\ predicted   0  1\n               0  10  0" in text


def test_every_algorithm_names_its_evaluation():
    import importlib

    from sagemaker_cv.algorithms import REGISTRY

    for record in REGISTRY.values():
        module, _, function = record.evaluation.partition(":")
        assert callable(getattr(importlib.import_module(module), function)), record.name
