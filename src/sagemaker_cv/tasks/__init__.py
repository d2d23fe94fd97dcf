"""The algorithms: each a Task run by the one shared loop in `engine`."""

from __future__ import annotations

from sagemaker_cv.errors import ClientError


def task_class(algorithm: str):
    if algorithm == "image-classification":
        from sagemaker_cv.tasks.classification import ClassificationTask

        return ClassificationTask
    # Called after the config files and hyperparameters were validated, so say that they passed.
    raise ClientError(
        f"algorithm {algorithm!r}: training is not available in this version of the image "
        "(image-classification is); the hyperparameters and config files are valid"
    )
