"""The algorithms: each a Task run by the one shared loop in `engine`."""

from __future__ import annotations

from sagemaker_cv.errors import ClientError


def task_class(algorithm: str):
    if algorithm == "image-classification":
        from sagemaker_cv.tasks.classification import ClassificationTask

        return ClassificationTask
    raise ClientError(
        f"algorithm {algorithm!r}: training is not available in this version of the image "
        "(image-classification is); its hyperparameters can be checked with `sagemaker-cv validate`"
    )
