"""Semantic segmentation's channels: images, one PNG mask per image with the same stem, an
optional label map, and `model` for incremental training."""

from __future__ import annotations

from sagemaker_cv.algorithms.record import ChannelSpec
from sagemaker_cv.contract.content_types import JPEG, JSON, MODEL, PNG, X_IMAGE

CHANNELS = (
    ChannelSpec("train", True, (JPEG, PNG, X_IMAGE), "Training images (JPEG)."),
    ChannelSpec("validation", True, (JPEG, PNG, X_IMAGE), "Validation images (JPEG)."),
    ChannelSpec(
        "train_annotation",
        True,
        (PNG, JPEG, X_IMAGE),
        "One PNG label image per training image, same file name stem.",
    ),
    ChannelSpec(
        "validation_annotation",
        True,
        (PNG, JPEG, X_IMAGE),
        "One PNG label image per validation image, same file name stem.",
    ),
    ChannelSpec(
        "label_map",
        False,
        (JSON, PNG, JPEG, X_IMAGE),
        "Optional train_label_map.json / validation_label_map.json mapping label values to classes.",
    ),
    ChannelSpec(
        "model",
        False,
        (MODEL,),
        "Incremental training: the model.tar.gz of an earlier semantic-segmentation job with the same "
        "algorithm, backbone, num_classes and crop_size.",
    ),
)
