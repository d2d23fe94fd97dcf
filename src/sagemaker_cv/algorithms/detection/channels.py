"""Object detection's channels: RecordIO (`train`, `validation`) or images with one JSON annotation
per image (`train` + `train_annotation`, `validation` + `validation_annotation`)."""

from __future__ import annotations

from sagemaker_cv.algorithms.record import ChannelSpec
from sagemaker_cv.contract.content_types import JPEG, JSON, PNG, RECORDIO, X_IMAGE

CHANNELS = (
    ChannelSpec(
        "train",
        True,
        (RECORDIO, JPEG, PNG, X_IMAGE),
        "Training data: one RecordIO (.rec) file, or JPEG/PNG images annotated by train_annotation.",
    ),
    ChannelSpec(
        "validation",
        True,
        (RECORDIO, JPEG, PNG, X_IMAGE),
        "Validation data: one RecordIO (.rec) file, or images annotated by validation_annotation.",
    ),
    ChannelSpec(
        "train_annotation",
        False,
        (JPEG, PNG, X_IMAGE, JSON),
        "Image input only: one JSON annotation file per training image.",
    ),
    ChannelSpec(
        "validation_annotation",
        False,
        (JPEG, PNG, X_IMAGE, JSON),
        "Image input only: one JSON annotation file per validation image.",
    ),
)
