"""Object detection (SSD) hyperparameters, from the built-in's documentation."""

from __future__ import annotations

from sagemaker_cv.schema import common
from sagemaker_cv.schema.base import (
    BOOLEAN,
    CATEGORICAL,
    FLOAT,
    INTEGER,
    STRING,
    Param,
    Schema,
    regex,
)


def _open01(
    name: str, doc: str, default: float, *, high_open: bool, tunable: bool = False, optimizers=None
) -> Param:
    return Param(
        name,
        FLOAT,
        doc,
        default=default,
        low=0,
        high=1,
        low_open=True,
        high_open=high_open,
        tunable=tunable,
        optimizers=optimizers or {},
    )


PARAMS = (
    common.num_classes(),
    common.num_training_samples(),
    Param(
        "base_network",
        CATEGORICAL,
        "Base network of the SSD detector.",
        default="vgg-16",
        choices=("vgg-16", "resnet-50"),
    ),
    *common.early_stopping("validation mAP", min_epochs=10, patience=5),
    Param(
        "image_shape",
        INTEGER,
        "Side of the square the input images are rescaled to; 300 and 512 work best. At most 2048: "
        "MXNet's CPU convolutions crash on some larger inputs (4092 and 4096 measured), and one image "
        "of 2048 already needs about 10 GB to train. On CPU hosts a job whose mini_batch_size x "
        "image_shape^2 needs more memory than the host has (about 2.2 KB per pixel with resnet-50, "
        "2.6 KB with vgg-16) is refused before training.",
        default=300,
        low=300,
        high=2048,
    ),
    common.epochs(30),
    Param(
        "freeze_layer_pattern",
        STRING,
        "Regular expression: base-network layers whose names match are not updated during training.",
        convert=regex,
        valid_text="a regular expression, e.g. '^(conv1_|conv2_).*'",
    ),
    common.kv_store(),
    Param(
        "label_width",
        INTEGER,
        "Padded label width shared by training and validation data; at least 5 x the most objects in "
        "one image + 2 (header). At most 10000 (1999 objects): every image's label is padded to it in "
        "every batch (at 10^9 the iterator's allocation crashed).",
        default=350,
        low=7,  # the 2 header values and one object's 5 numbers
        high=10000,
    ),
    _open01("learning_rate", "Initial learning rate.", 0.001, high_open=False, tunable=True),
    _open01(
        "lr_scheduler_factor",
        "Factor the learning rate is multiplied by at each lr_scheduler_step epoch.",
        0.1,
        high_open=True,
    ),
    common.lr_scheduler_step(
        "Epochs after which the learning rate is multiplied by lr_scheduler_factor, e.g. '10, 20'."
    ),
    Param(
        "mini_batch_size",
        INTEGER,
        "Batch size per host, split across the host's GPUs. With dist_sync the global batch is "
        "mini_batch_size x number of hosts.",
        default=32,
        low=1,
        tunable=True,
    ),
    _open01("momentum", "Momentum.", 0.9, high_open=False, tunable=True, optimizers={"sgd": "momentum"}),
    _open01("nms_threshold", "Non-maximum suppression threshold.", 0.45, high_open=False),
    Param(
        "nms_topk",
        INTEGER,
        "Detections with the highest scores that non-maximum suppression considers per image. Not in "
        "the built-in's documentation, but in its default configuration.",
        default=400,
        low=1,
    ),
    Param(
        "optimizer",
        CATEGORICAL,
        "Optimizer: sgd, adam, rmsprop or adadelta.",
        default="sgd",
        choices=("sgd", "adam", "rmsprop", "adadelta"),
        tunable=True,
    ),
    _open01(
        "overlap_threshold",
        "IoU above which a detection matches a ground-truth box in evaluation.",
        0.5,
        high_open=False,
    ),
    Param(
        "use_pretrained_model",
        BOOLEAN,
        "1: start from ImageNet weights for the base network (a local params file).",
        default=True,
        bool_words=("0", "1"),
    ),
    _open01(
        "weight_decay",
        "Weight decay.",
        0.0005,
        high_open=True,
        tunable=True,
        optimizers={"sgd": "wd", "rmsprop": "wd"},
    ),
    # In the built-in's default configuration, so users copy them into their jobs.
    Param("_kvstore", STRING, "The built-in's internal kvstore setting.", ignored=True),
    Param("_num_kv_servers", STRING, "The built-in's internal parameter-server count.", ignored=True),
    Param("_begin_epoch", STRING, "The built-in's internal first epoch.", ignored=True),
)


SCHEMA = Schema(
    "object-detection",
    PARAMS,
    rules=(
        common.rule_schedule_below_epochs,
        common.rule_kv_store_hosts,
        common.rule_early_stopping_needs_validation("validation mAP"),
    ),
)
