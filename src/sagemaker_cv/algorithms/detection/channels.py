"""Object detection's channels: RecordIO (`train`, `validation`) or images with one JSON annotation
per image (`train` + `train_annotation`, `validation` + `validation_annotation`); RecordIO also in
Pipe mode; `model` for incremental training."""

from __future__ import annotations

from sagemaker_cv.algorithms.record import ChannelSpec
from sagemaker_cv.contract.content_types import JPEG, JSON, MODEL, PNG, RECORDIO, X_IMAGE

CHANNELS = (
    ChannelSpec(
        "train",
        True,
        (RECORDIO, JPEG, PNG, X_IMAGE),
        "Training data: RecordIO (.rec) file(s), also in Pipe mode, or JPEG/PNG images annotated by "
        "train_annotation. In Pipe mode also an augmented manifest (image then bounding-box object).",
        input_modes=("File", "Pipe"),
    ),
    ChannelSpec(
        "validation",
        True,
        (RECORDIO, JPEG, PNG, X_IMAGE),
        "Validation data: RecordIO (.rec) file(s), also in Pipe mode, or images annotated by "
        "validation_annotation.",
        input_modes=("File", "Pipe"),
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
    ChannelSpec(
        "model",
        False,
        (MODEL,),
        "Incremental training: the model.tar.gz of an earlier object-detection job with the same "
        "base_network, num_classes and image_shape.",
    ),
)
