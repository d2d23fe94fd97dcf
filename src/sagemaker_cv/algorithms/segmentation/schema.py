"""Semantic segmentation hyperparameters, from the built-in's documentation, with the keys its
later documentation added (base_size, syncbn, lr_scheduler_factor, lr_scheduler_step)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sagemaker_cv.schema import common
from sagemaker_cv.schema.base import BOOLEAN, CATEGORICAL, FLOAT, INTEGER, STRING, Context, Param, Schema

PARAMS = (
    Param(
        "backbone",
        CATEGORICAL,
        "Backbone of the encoder.",
        default="resnet-50",
        choices=("resnet-50", "resnet-101"),
    ),
    Param(
        "use_pretrained_model",
        BOOLEAN,
        "True: start the backbone from ImageNet weights (a local params file).",
        default=True,
    ),
    Param(
        "algorithm",
        CATEGORICAL,
        "fcn (Fully-Convolutional Network), psp (Pyramid Scene Parsing) or deeplab (DeepLab V3).",
        default="fcn",
        choices=("fcn", "psp", "deeplab"),
    ),
    common.num_classes(low=2, high=254),
    common.num_training_samples(),
    Param(
        "base_size",
        INTEGER,
        "Training images are rescaled so the long side is base_size x a random factor in [0.5, 2.0]. "
        "At most 2048: every loader thread holds one image rescaled to a long side of up to 2 x base_size "
        "(4096x4096 x 4 bytes = 64 MB at 2048).",
        default=520,
        low=16,
        low_open=True,
        high=2048,
    ),
    Param(
        "crop_size",
        INTEGER,
        "Side of the square training crop; rounded up to a multiple of 8. At most 2048: MXNet's CPU "
        "convolutions crash (SIGFPE) on some feature maps of 512x512 and more (the network's first stage "
        "works at a quarter of the crop), and a crop of 2048 needs about 22 GB per image to train with fcn. "
        "On CPU hosts a job whose mini_batch_size x crop_size^2 needs more memory than the host has (from "
        "about 5 KB per pixel with fcn) is refused before training.",
        default=480,
        low=16,
        low_open=True,
        high=2048,
    ),
    *common.early_stopping("validation mIOU", min_epochs=5, patience=4, min_epochs_low=0),
    common.epochs(30),
    Param(
        "gamma1",
        FLOAT,
        "Decay factor of the moving average of the squared gradient.",
        default=0.9,
        low=0,
        high=1,
        optimizers={"rmsprop": "gamma1"},
    ),
    Param(
        "gamma2",
        FLOAT,
        "Momentum factor (centered RMSProp).",
        default=0.9,
        low=0,
        high=1,
        optimizers={"rmsprop": "gamma2"},
    ),
    common.kv_store(" (An extension: the built-in trains on one host only.)"),
    Param(
        "learning_rate",
        FLOAT,
        "Initial learning rate.",
        default=0.001,
        low=0,
        high=1,
        low_open=True,
        tunable=True,
    ),
    Param(
        "lr_scheduler",
        CATEGORICAL,
        "Shape of the learning-rate decay: step, poly or cosine.",
        default="poly",
        choices=("step", "poly", "cosine"),
    ),
    Param(
        "lr_scheduler_factor",
        FLOAT,
        "Factor the learning rate is multiplied by at each lr_scheduler_step epoch (lr_scheduler=step).",
        default=0.1,
        low=0,
        high=1,
    ),
    common.lr_scheduler_step(
        "Epochs after which the learning rate is multiplied by lr_scheduler_factor; required with lr_scheduler=step."
    ),
    Param(
        "mini_batch_size",
        INTEGER,
        "Training batch size per host, split across the host's devices. With dist_sync the global batch "
        "is mini_batch_size x number of hosts.",
        default=4,
        low=1,
        tunable=True,
    ),
    Param(
        "momentum",
        FLOAT,
        "Momentum.",
        default=0.9,
        low=0,
        high=1,
        low_open=True,
        tunable=True,
        optimizers={"sgd": "momentum"},
    ),
    Param(
        "optimizer",
        CATEGORICAL,
        "Optimizer: adam, adagrad, nag, rmsprop or sgd.",
        default="sgd",
        choices=("adam", "adagrad", "nag", "rmsprop", "sgd"),
        tunable=True,
    ),
    Param(
        "syncbn",
        BOOLEAN,
        "True: synchronise batch normalisation across the devices of a host (SyncBatchNorm).",
        default=False,
    ),
    Param(
        "validation_mini_batch_size",
        INTEGER,
        "Validation batch size; 1 scores every image whole, at its own size; > 1 scores crop_size "
        "centre crops.",
        default=4,
        low=1,
    ),
    Param(
        "weight_decay",
        FLOAT,
        "Weight decay.",
        default=0.0001,
        low=0,
        high=1,
        low_open=True,
        high_open=True,
        tunable=True,
        optimizers={"sgd": "wd"},
    ),
    # The keys of the built-in's default-input.json that its documentation does not list. Users
    # copy that file, so every key is accepted; those with a meaning here are honoured.
    common.precision_dtype(),
    Param(
        "_workers",
        INTEGER,
        "Threads that decode and augment images (0: in the training thread). Default: one per CPU.",
        low=0,
    ),
    Param(
        "_aux_loss",
        BOOLEAN,
        "True: train the auxiliary FCN head on layer 3 (weighted by _aux_weight).",
        default=True,
    ),
    Param("_aux_weight", FLOAT, "Weight of the auxiliary loss.", default=0.5, low=0, high=1),
    Param(
        "_augmentation_type",
        CATEGORICAL,
        "Training augmentation: default (random flip, rescale in [0.5, 2] x base_size, crop, blur).",
        default="default",
        choices=("default",),
    ),
    Param(
        "_logging_frequency",
        INTEGER,
        "Iterations between two #progress_notice lines. Default: 20 (or $SAGEMAKER_CV_LOG_INTERVAL).",
        low=1,
    ),
    Param(
        "_hybrid",
        BOOLEAN,
        "Whether the built-in hybridizes its network (this image always does).",
        ignored=True,
    ),
    Param(
        "_kvstore",
        STRING,
        "The built-in's single-host kvstore (this image chooses it from the devices).",
        ignored=True,
    ),
    Param(
        "_num_kv_servers",
        STRING,
        "The built-in's parameter-server count (this image runs one per host).",
        ignored=True,
    ),
)


def _rules(values: Mapping[str, Any], ctx: Context) -> list[str]:
    problems = []
    if values["lr_scheduler"] == "step" and not values["lr_scheduler_step"]:
        problems.append("lr_scheduler_step: required with lr_scheduler=step, e.g. lr_scheduler_step='10, 20'")
    return problems


SCHEMA = Schema(
    "semantic-segmentation",
    PARAMS,
    # gamma2 is RMSProp's momentum only in its centered form (Graves 2013), which MXNet calls centered.
    optimizer_constants={"rmsprop": {"centered": True}},
    rules=(
        _rules,
        common.rule_schedule_below_epochs,
        common.rule_kv_store_hosts,
        common.rule_float16_needs_gpu,
        common.rule_early_stopping_needs_validation("validation mIOU"),
    ),
)
