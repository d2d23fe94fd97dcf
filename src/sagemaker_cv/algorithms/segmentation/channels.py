"""Semantic segmentation's channels: in File mode images and one PNG mask per image with the same
stem; in Pipe mode an augmented manifest streaming image and mask pairs through `train` and
`validation` (no annotation channels); an optional label map, and `model` for incremental
training.

The annotation channels are not required in the algorithm specification: SageMaker would refuse a
Pipe-mode job without them. `inputs.resolve` requires them for the splits read in File mode."""

from __future__ import annotations

from sagemaker_cv.algorithms.record import ChannelSpec
from sagemaker_cv.contract.content_types import JPEG, JSON, MODEL, PNG, RECORDIO, X_IMAGE

CHANNELS = (
    ChannelSpec(
        "train",
        True,
        (JPEG, PNG, X_IMAGE, RECORDIO),
        "Training images (JPEG) in File mode, or in Pipe mode an augmented manifest of image and PNG "
        "mask references (RecordWrapperType RecordIO).",
        input_modes=("File", "Pipe"),
    ),
    ChannelSpec(
        "validation",
        True,
        (JPEG, PNG, X_IMAGE, RECORDIO),
        "Validation images (JPEG) in File mode, or in Pipe mode an augmented manifest of image and PNG "
        "mask references (RecordWrapperType RecordIO).",
        input_modes=("File", "Pipe"),
    ),
    ChannelSpec(
        "train_annotation",
        False,
        (PNG, JPEG, X_IMAGE),
        "Required when train is in File mode: one PNG label image per training image, same file name stem.",
    ),
    ChannelSpec(
        "validation_annotation",
        False,
        (PNG, JPEG, X_IMAGE),
        "Required when validation is in File mode: one PNG label image per validation image, same file "
        "name stem.",
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
