"""Image classification's per-class figures for `sagemaker-cv evaluate`: accuracy, top-k accuracy,
precision, recall, F1 and support per class, the confusion matrix (rows: true class, columns:
predicted). Multi-label models decide each class by the training rule (logit > 0, p > 0.5) and get
the per-class figures without a confusion matrix.

`report` is plain numpy; `evaluate` runs the network over the task's validation batches, as
validation does.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _ratio(numerator: float, denominator: float) -> float | None:
    """None where a figure is undefined (a class never predicted has no precision)."""
    return float(numerator / denominator) if denominator else None


def per_class(tp: np.ndarray, predicted: np.ndarray, support: np.ndarray) -> list[dict[str, Any]]:
    rows = []
    for c in range(len(tp)):
        rows.append(
            {
                "class": c,
                "precision": _ratio(tp[c], predicted[c]),
                "recall": _ratio(tp[c], support[c]),
                # 2PR/(P+R) written with counts: defined (0) even where the class is never predicted
                "f1": _ratio(2 * tp[c], predicted[c] + support[c]),
                "support": int(support[c]),
            }
        )
    return rows


def report(scores: np.ndarray, labels: np.ndarray, *, multi_label: bool, top_k: int | None) -> dict[str, Any]:
    """Figures from the network's outputs `scores` (N, classes) and the true `labels` ((N,) class
    indices, or (N, classes) 0/1 for multi-label)."""
    classes = scores.shape[1]
    if multi_label:
        decided = scores > 0
        truth = labels.astype(bool)
        tp = (decided & truth).sum(axis=0)
        return {
            "figures": {"accuracy": float((decided == truth).mean())},
            "classes": per_class(tp, decided.sum(axis=0), truth.sum(axis=0)),
        }
    truth = labels.astype(np.int64)
    predicted = scores.argmax(axis=1)
    confusion = np.bincount(truth * classes + predicted, minlength=classes * classes).reshape(
        classes, classes
    )
    figures = {"accuracy": float((predicted == truth).mean())}
    # top-k as training logs it (top_k), else the largest k < classes up to 5: k = classes says nothing
    k = top_k or min(5, classes - 1)
    if 1 < k < classes:
        best = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        figures[f"top_{k}_accuracy"] = float((best == truth[:, None]).any(axis=1).mean())
    return {
        "figures": figures,
        "classes": per_class(np.diag(confusion), confusion.sum(axis=0), confusion.sum(axis=1)),
        "confusion_matrix": confusion.tolist(),
    }


def evaluate(task) -> dict[str, Any]:
    """The network's outputs over the validation batches of a set-up ClassificationTask, as its
    `validate` computes them, and their figures."""
    import mxnet as mx

    scores, labels = [], []
    for batch, keep in task._validation_batches():
        if keep <= 0:
            continue
        parts = task.device_parts(batch)
        outputs = [task.as_float32(task.net(x)) for x, _ in parts]
        scores.append(mx.nd.concat(*[o.as_in_context(mx.cpu()) for o in outputs], dim=0)[:keep].asnumpy())
        labels.append(mx.nd.concat(*[y.as_in_context(mx.cpu()) for _, y in parts], dim=0)[:keep].asnumpy())
    hp = task.hp
    return report(
        np.concatenate(scores),
        np.concatenate(labels),
        multi_label=bool(hp.multi_label),
        top_k=hp.top_k if hp.top_k and not hp.multi_label else None,
    )
