"""Validation mAP: PASCAL VOC 2007 (11-point interpolated average precision, averaged over the
classes that have ground-truth objects) at IoU `overlap_threshold`, on corners normalised to [0, 1].
`sagemaker-cv evaluate` adds the AP of each class and a COCO-style AP@[.5:.95]. Objects marked
difficult (VOC's `difficult`, COCO's crowds) count as VOC's devkit counts them: not as positives,
and a detection whose best match is one is neither right nor wrong (COCO's evaluation ignores
detections on crowds alike).

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

    def update(
        self,
        detections: np.ndarray,
        gt_boxes: np.ndarray,
        gt_ids: np.ndarray,
        gt_difficult: np.ndarray | None = None,
    ) -> None:
        """detections (B, K, 6): [class, score, xmin, ymin, xmax, ymax], class -1 for none;
        gt_boxes (B, M, 4) and gt_ids (B, M), -1 for padding; gt_difficult (B, M) bool or None."""
        if gt_difficult is None:
            gt_difficult = np.zeros(gt_ids.shape, dtype=bool)
        for rows, boxes, ids, hard in zip(detections, gt_boxes, gt_ids, gt_difficult):
            real = ids >= 0
            rows, boxes, ids, hard = rows[rows[:, 0] >= 0], boxes[real], ids[real], hard[real]
            for cls in set(rows[:, 0].astype(int)) | set(ids.astype(int)):
                self._update_class(cls, rows[rows[:, 0] == cls], boxes[ids == cls], hard[ids == cls])

    def _update_class(self, cls: int, rows: np.ndarray, truth: np.ndarray, hard: np.ndarray) -> None:
        self.positives[cls] += int((~hard).sum())
        rows = rows[np.argsort(-rows[:, 1], kind="stable")]
        if not len(truth):
            self.scores[cls].extend(rows[:, 1].tolist())
            self.hits[cls].extend([0] * len(rows))
            return
        overlaps = iou(rows[:, 2:6], truth)
        taken = np.zeros(len(truth), bool)
        for score, best, value in zip(rows[:, 1], overlaps.argmax(axis=1), overlaps.max(axis=1)):
            if value >= self.iou_threshold and hard[best]:
                continue  # matched a difficult object: not counted
            hit = value >= self.iou_threshold and not taken[best]
            taken[best] |= hit
            self.scores[cls].append(float(score))
            self.hits[cls].append(int(hit))

    def per_class(self) -> dict[int, float]:
        """AP of every class that has ground-truth objects, by class id."""
        return {
            int(c): eleven_point_ap(np.array(self.hits[c], float), np.array(self.scores[c]), n)
            for c, n in sorted(self.positives.items())
            if n
        }

    def value(self) -> float:
        aps = list(self.per_class().values())
        return float(np.mean(aps)) if aps else 0.0


# ---- COCO-style AP@[.5:.95] (for `sagemaker-cv evaluate`) -----------------------------------------

COCO_THRESHOLDS = np.linspace(0.5, 0.95, 10)
_RECALL_POINTS = np.linspace(0.0, 1.0, 101)


def coco_matches(
    rows: np.ndarray, truth: np.ndarray, threshold: float, ignored: np.ndarray | None = None
) -> np.ndarray:
    """1 for each detection of one class in one image (highest score first) that takes the
    unmatched object it overlaps most, at IoU >= threshold; 0 otherwise (COCO's greedy matching:
    a detection whose best object is taken may still take another); NaN for a detection that
    takes none but overlaps an `ignored` object (a crowd) that much: COCO counts it nowhere."""
    hits = np.zeros(len(rows))
    if not len(truth) or not len(rows):
        return hits
    ignored = np.zeros(len(truth), bool) if ignored is None else ignored
    overlaps = iou(rows[:, 2:6], truth)
    free = ~ignored
    for i in range(len(rows)):
        candidates = np.where(free & (overlaps[i] >= threshold), overlaps[i], -1.0)
        best = int(candidates.argmax())
        if candidates[best] >= 0:
            free[best] = False
            hits[i] = 1
        elif np.any(ignored & (overlaps[i] >= threshold)):
            hits[i] = np.nan
    return hits


def hundred_one_point_ap(hits: np.ndarray, scores: np.ndarray, positives: int) -> float:
    """COCO's AP: the precision envelope sampled at recall 0, 0.01, ..., 1 (0 past the last recall)."""
    order = np.argsort(-scores, kind="mergesort")
    tp = np.cumsum(hits[order])
    recall = tp / positives
    precision = tp / np.arange(1, len(tp) + 1)
    envelope = np.maximum.accumulate(precision[::-1])[::-1] if len(precision) else precision
    at = np.searchsorted(recall, _RECALL_POINTS, side="left")
    return float(np.mean([envelope[i] if i < len(envelope) else 0.0 for i in at]))


class DetectionSet:
    """Every image's detections and objects, kept whole so that figures at several IoU thresholds
    can be computed from one pass over the data; same arguments as `VOC07MeanAP.update`."""

    def __init__(self) -> None:
        self.images: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []

    def update(
        self,
        detections: np.ndarray,
        gt_boxes: np.ndarray,
        gt_ids: np.ndarray,
        gt_difficult: np.ndarray | None = None,
    ) -> None:
        if gt_difficult is None:
            gt_difficult = np.zeros(gt_ids.shape, dtype=bool)
        for rows, boxes, ids, hard in zip(detections, gt_boxes, gt_ids, gt_difficult):
            real = ids >= 0
            self.images.append((rows[rows[:, 0] >= 0], boxes[real], ids[real].astype(int), hard[real]))

    def voc07(self, iou_threshold: float) -> VOC07MeanAP:
        metric = VOC07MeanAP(iou_threshold)
        for rows, boxes, ids, hard in self.images:
            metric.update(rows[None], boxes[None], ids[None], hard[None])
        return metric

    def coco(self) -> dict[int, float]:
        """AP averaged over IoU 0.50:0.05:0.95 for every class with objects, by class id."""
        classes = sorted({int(c) for _, _, ids, hard in self.images for c in ids[~hard]})
        out = {}
        for cls in classes:
            aps = []
            for threshold in COCO_THRESHOLDS:
                hits, scores, positives = [], [], 0
                for rows, boxes, ids, hard in self.images:
                    mine = rows[rows[:, 0] == cls]
                    mine = mine[np.argsort(-mine[:, 1], kind="mergesort")]
                    truth, ignored = boxes[ids == cls], hard[ids == cls]
                    positives += int((~ignored).sum())
                    matched = coco_matches(mine, truth, threshold, ignored)
                    counted = ~np.isnan(matched)
                    hits.append(matched[counted])
                    scores.append(mine[counted, 1])
                aps.append(hundred_one_point_ap(np.concatenate(hits), np.concatenate(scores), positives))
            out[cls] = float(np.mean(aps))
        return out


def report(found: DetectionSet, overlap_threshold: float, names: tuple[str, ...] = ()) -> dict:
    """Per-class VOC07 AP at the job's threshold (their mean is validation's mAP) and COCO-style AP;
    `names` (COCO and VOC data name their classes) name the classes too."""
    voc = found.voc07(overlap_threshold).per_class()
    coco = found.coco()
    objects: dict[int, int] = defaultdict(int)
    for _, _, ids, hard in found.images:
        for c in ids[~hard]:
            objects[int(c)] += 1
    return {
        "figures": {
            f"mAP@{overlap_threshold:g} (VOC07 11-point)": float(np.mean(list(voc.values()))) if voc else 0.0,
            "AP@[.5:.95] (COCO-style)": float(np.mean(list(coco.values()))) if coco else 0.0,
        },
        "classes": [
            {
                "class": int(c),
                **({"name": names[c]} if c < len(names) else {}),
                "AP": voc[c],
                "AP@[.5:.95]": coco[c],
                "objects": objects[c],
            }
            for c in sorted(voc)
        ],
    }


def evaluate(task) -> dict:
    """Detections over the validation batches of a set-up DetectionTask, as its `validate` makes
    them, and their figures."""
    import mxnet as mx

    from sagemaker_cv.algorithms.detection.data import difficult_flags
    from sagemaker_cv.algorithms.detection.labels import ground_truth

    found = DetectionSet()
    for batch, keep in task._validation_batches():
        if keep <= 0:
            continue
        rows = [task.export_block(x) for (x,) in task.split(batch.data[0])]
        detections = mx.nd.concat(*[r.as_in_context(mx.cpu()) for r in rows], dim=0)[:keep].asnumpy()
        boxes, ids = ground_truth(batch.label[0].asnumpy()[:keep], 1.0)
        found.update(
            detections, boxes, ids[:, :, 0], difficult_flags(task.val_records, batch, keep, ids.shape[1])
        )
    class_map = task.class_map()  # the data's, else the model's class_map.json
    return report(found, task.hp.overlap_threshold, class_map.names if class_map else ())
