"""Image classification's channels: RecordIO (`train`, `validation`) or images listed by .lst files
(`train` + `train_lst`, `validation` + `validation_lst`)."""

from __future__ import annotations

from sagemaker_cv.algorithms.record import ChannelSpec
from sagemaker_cv.contract.content_types import IMAGE_TYPES, RECORDIO

CHANNELS = (
    ChannelSpec(
        "train",
        True,
        (RECORDIO, *IMAGE_TYPES),
        "Training data: one RecordIO (.rec) file, or the images listed by the train_lst channel.",
    ),
    ChannelSpec(
        "validation",
        False,
        (RECORDIO, *IMAGE_TYPES),
        "Validation data: one RecordIO (.rec) file, or the images listed by the validation_lst channel.",
    ),
    ChannelSpec(
        "train_lst",
        False,
        IMAGE_TYPES,
        "Image input only: .lst file(s) (index, label(s), relative path; tab-separated) for the train images.",
    ),
    ChannelSpec(
        "validation_lst", False, IMAGE_TYPES, "Image input only: .lst file(s) for the validation images."
    ),
    # No `model` channel (application/x-sagemaker-model): the trainer refuses incremental training for
    # now, and SageMaker would otherwise accept jobs that are bound to fail.
)
