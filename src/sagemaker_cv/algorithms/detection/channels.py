"""Object detection's channels: RecordIO (`train`, `validation`) or images with their annotations
(`train` + `train_annotation`, `validation` + `validation_annotation`: one JSON per image as the
built-in, one COCO instances file, or Pascal VOC XML); RecordIO also in Pipe mode; `model` for
incremental training."""

from __future__ import annotations

from sagemaker_cv.algorithms.record import ChannelSpec
from sagemaker_cv.contract.content_types import JPEG, JSON, MODEL, PNG, RECORDIO, X_IMAGE, XML

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
        (JPEG, PNG, X_IMAGE, JSON, XML),
        "Image input only: one JSON annotation file per training image, one COCO instances file, or "
        "one Pascal VOC XML file per image.",
    ),
    ChannelSpec(
        "validation_annotation",
        False,
        (JPEG, PNG, X_IMAGE, JSON, XML),
        "Image input only: the validation images' annotations, in the format of train_annotation.",
    ),
    ChannelSpec(
        "model",
        False,
        (MODEL,),
        "Incremental training: the model.tar.gz of an earlier object-detection job with the same "
        "base_network, num_classes and image_shape.",
    ),
)
