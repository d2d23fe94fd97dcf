"""Semantic segmentation's per-class figures for `sagemaker-cv evaluate`: IoU, pixel accuracy
(recall) and pixel counts per class, from the same confusion matrix and rules as validation
(`metrics.Confusion`: pixels labelled 255 count nowhere; a class absent from labels and
predictions has no IoU and stays out of the mean).

`report` is plain numpy; `evaluate` runs the network over the task's validation batches, as
validation does.
"""

from __future__ import annotations

import numpy as np

from sagemaker_cv.algorithms.segmentation.metrics import Confusion


def report(confusion: Confusion) -> dict:
    matrix = confusion.matrix
    iou = confusion.iou()
    labelled, predicted = matrix.sum(axis=1), matrix.sum(axis=0)
    return {
        "figures": {"pixel_accuracy": confusion.pixel_accuracy(), "mIOU": confusion.mean_iou()},
        "classes": [
            {
                "class": c,
                "IoU": None if np.isnan(iou[c]) else float(iou[c]),
                "pixel_accuracy": float(matrix[c, c] / labelled[c]) if labelled[c] else None,
                "pixels": int(labelled[c]),
                "predicted_pixels": int(predicted[c]),
            }
            for c in range(confusion.num_classes)
        ],
        "confusion_matrix": matrix.tolist(),
    }


def evaluate(task) -> dict:
    """Predictions over the validation batches of a set-up SegmentationTask, through the same
    whole-image (or centre-crop) network as its `validate`, and their figures."""
    import mxnet as mx

    confusion = Confusion(task.hp.num_classes)
    for (pixels, labels), keep in task._validation_batches():
        if keep <= 0:
            continue
        # uint8 NHWC -> float32 NCHW raw pixels: the network normalises them (as in validation)
        x = (
            mx.nd.array(pixels[:keep], dtype=np.uint8, ctx=task.ctx[0])
            .astype("float32")
            .transpose((0, 3, 1, 2))
        )
        probabilities = task.whole(task.cast_input(x))
        confusion.update(labels[:keep], probabilities.argmax(axis=1).astype("uint8").asnumpy())
    return report(confusion)
