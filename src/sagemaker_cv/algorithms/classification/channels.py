"""Image classification's channels: RecordIO (`train`, `validation`; also in Pipe mode, also as
an augmented manifest) or images listed by .lst files (`train` + `train_lst`, `validation` +
`validation_lst`), and `model` for incremental training."""

from __future__ import annotations

from sagemaker_cv.algorithms.record import ChannelSpec
from sagemaker_cv.contract.content_types import IMAGE_TYPES, MODEL, RECORDIO

CHANNELS = (
    ChannelSpec(
        "train",
        True,
        (RECORDIO, *IMAGE_TYPES),
        "Training data: one RecordIO (.rec) file, or the images listed by the train_lst channel. In Pipe "
        "mode: RecordIO, or an augmented manifest (RecordWrapperType RecordIO, image then label).",
        input_modes=("File", "Pipe"),
    ),
    ChannelSpec(
        "validation",
        False,
        (RECORDIO, *IMAGE_TYPES),
        "Validation data: one RecordIO (.rec) file, or the images listed by the validation_lst channel. In "
        "Pipe mode: RecordIO, or an augmented manifest.",
        input_modes=("File", "Pipe"),
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
    ChannelSpec(
        "model",
        False,
        (MODEL,),
        "Incremental training: the model.tar.gz of an earlier image-classification job with the same "
        "num_classes, num_layers and image_shape.",
    ),
)
