"""Image classification hyperparameters, from the built-in's documentation (the newer page wins
where the two disagree: momentum defaults to 0.9 and the early_stopping keys exist)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sagemaker_cv.contract.content_types import IMAGE_TYPES, media_type
from sagemaker_cv.schema import common
from sagemaker_cv.schema.base import (
    BOOLEAN,
    CATEGORICAL,
    FLOAT,
    INTEGER,
    STRING,
    Context,
    Invalid,
    Param,
    Schema,
    parse_int,
)

MAX_SIDE = 8192  # pixels; a larger network input does not fit a GPU, and overflows MXNet's shapes
IMAGENET_LAYERS = (18, 34, 50, 101, 152, 200)
CIFAR_LAYERS = (20, 32, 44, 56, 110)
# Depths with public ImageNet weights (GluonCV's ResNet v1b, republished by timm): the only ones
# use_pretrained_model=1 accepts. Nobody publishes a 200-layer v1b or CIFAR-style ImageNet model.
PRETRAINED_NETWORKS = {n: f"resnet{n}_v1b" for n in (18, 34, 50, 101, 152)}
ZERO_ONE = ("0", "1")


def image_shape(text: str) -> tuple[int, int, int]:
    parts = [p.strip() for p in text.split(",")]
    try:
        shape = tuple(parse_int(p) for p in parts)
    except Invalid:
        shape = ()
    if len(shape) != 3 or shape[0] not in (1, 3) or not all(1 <= side <= MAX_SIDE for side in shape[1:]):
        raise Invalid(
            "expected 'channels,height,width' with channels 1 or 3 and sides up to 8192, e.g. '3,224,224'"
        )
    return shape  # type: ignore[return-value]


def _float01(name: str, doc: str, default: float, tunable: bool = False, optimizers=None) -> Param:
    return Param(
        name, FLOAT, doc, default=default, low=0, high=1, tunable=tunable, optimizers=optimizers or {}
    )


PARAMS = (
    common.num_classes(),
    common.num_training_samples(),
    Param(
        "augmentation_type",
        CATEGORICAL,
        "crop: random crop and horizontal flip; crop_color: also random hue/saturation/lightness "
        "shifts in [-36,36], [-50,50], [-50,50]; crop_color_transform: also rotation up to 10 degrees, "
        "shear up to 0.1 and aspect-ratio change up to 0.25. Unset: center crop only.",
        choices=("crop", "crop_color", "crop_color_transform"),
    ),
    _float01("beta_1", "Decay rate of the first moment estimates.", 0.9, True, {"adam": "beta1"}),
    _float01("beta_2", "Decay rate of the second moment estimates.", 0.999, True, {"adam": "beta2"}),
    Param(
        "checkpoint_frequency",
        INTEGER,
        "Save the model every this many epochs (all checkpoints end up in model.tar.gz). "
        "Unset: keep the epoch with the best validation accuracy.",
        low=1,
    ),
    *common.early_stopping("validation accuracy", min_epochs=10, patience=5),
    common.epochs(30),
    _float01("eps", "Epsilon.", 1e-8, True, {"adam": "epsilon", "rmsprop": "epsilon"}),
    _float01(
        "gamma", "Decay factor of the moving average of squared gradients.", 0.9, True, {"rmsprop": "gamma1"}
    ),
    Param(
        "image_shape",
        STRING,
        "Input dimensions 'channels,height,width' of the network; images are cropped to height x width.",
        default=(3, 224, 224),
        convert=image_shape,
        valid_text="'channels,height,width' with channels 1 or 3 and sides up to 8192",
    ),
    common.kv_store(),
    _float01("learning_rate", "Initial learning rate.", 0.1, True),
    _float01(
        "lr_scheduler_factor",
        "Factor the learning rate is multiplied by at each lr_scheduler_step epoch.",
        0.1,
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
    _float01("momentum", "Momentum.", 0.9, True, {"sgd": "momentum", "nag": "momentum"}),
    Param(
        "multi_label",
        BOOLEAN,
        "1 for multi-label classification (sigmoid outputs); the logged accuracy is averaged over classes.",
        default=False,
        bool_words=ZERO_ONE,
    ),
    Param(
        "num_layers",
        INTEGER,
        "ResNet depth: 18, 34, 50, 101, 152, 200 for ImageNet-size images; 20, 32, 44, 56, 110 for "
        "small (CIFAR-size) images. Transfer learning needs 18, 34, 50, 101 or 152.",
        default=152,
        choices=IMAGENET_LAYERS + CIFAR_LAYERS,
    ),
    Param(
        "optimizer",
        CATEGORICAL,
        "Optimizer: sgd, adam, rmsprop or nag.",
        default="sgd",
        choices=("sgd", "adam", "rmsprop", "nag"),
        tunable=True,
    ),
    common.precision_dtype(),
    Param(
        "resize",
        INTEGER,
        "Resize the shorter side of every image to this many pixels before cropping. Required for "
        "image (.lst) input.",
        low=1,
    ),
    Param(
        "top_k",
        INTEGER,
        "Also report top-k accuracy during training (k > 1).",
        low=2,
    ),
    Param(
        "use_pretrained_model",
        BOOLEAN,
        "1: start from ImageNet weights (a local params file) and re-initialize only the output layer.",
        default=False,
        bool_words=ZERO_ONE,
    ),
    Param(
        "use_weighted_loss",
        BOOLEAN,
        "1: weight the multi-label loss by the class frequencies of the training data (multi_label=1 only).",
        default=False,
        bool_words=ZERO_ONE,
    ),
    _float01("weight_decay", "Weight decay.", 0.0001, True, {"sgd": "wd", "nag": "wd"}),
    Param("model_prefix", STRING, "Passed by some AWS examples.", ignored=True),
)


def _rules(values: Mapping[str, Any], ctx: Context) -> tuple[list[str], list[str]]:
    problems: list[str] = []
    warnings: list[str] = []
    if values["checkpoint_frequency"] is not None and values["checkpoint_frequency"] > values["epochs"]:
        problems.append(
            f"checkpoint_frequency={values['checkpoint_frequency']}: must be no greater than epochs={values['epochs']}"
        )
    top_k = values["top_k"]
    if top_k is not None and top_k > values["num_classes"]:
        problems.append(f"top_k={top_k}: must be no greater than num_classes={values['num_classes']}")
    if top_k is not None and values["multi_label"]:
        warnings.append(
            f"top_k={top_k} is ignored with multi_label=1 (top-k accuracy is for single-label data)"
        )
    if values["learning_rate"] == 0:
        warnings.append("learning_rate=0: the weights will not change; training runs but learns nothing")
    if values["use_weighted_loss"] and not values["multi_label"]:
        problems.append("use_weighted_loss=1: only valid with multi_label=1")
    if values["use_pretrained_model"]:
        if values["num_layers"] not in PRETRAINED_NETWORKS:
            problems.append(
                f"num_layers={values['num_layers']}: transfer learning (use_pretrained_model=1) needs ImageNet "
                f"weights, which are published for num_layers {', '.join(map(str, PRETRAINED_NETWORKS))} only "
                "(none for 200 or the CIFAR-size depths); choose one of those or set use_pretrained_model=0"
            )
        if values["image_shape"][0] != 3:
            problems.append("use_pretrained_model=1: needs 3-channel images (image_shape '3,h,w')")
    types = {c: media_type(t) for c, t in ctx.content_types.items()}
    if values["resize"] is None and any(t in IMAGE_TYPES for t in types.values()):
        problems.append("resize: required with image content types (application/x-image); e.g. resize=256")
    if values["resize"] is not None:
        _, h, w = values["image_shape"]
        if values["resize"] < max(h, w):
            problems.append(
                f"resize={values['resize']}: must be at least the image_shape height and width ({h}, {w}); "
                "images are cropped to image_shape after resizing"
            )
    return problems, warnings


SCHEMA = Schema(
    "image-classification",
    PARAMS,
    rules=(
        _rules,
        common.rule_schedule_below_epochs,
        common.rule_kv_store_hosts,
        common.rule_float16_needs_gpu,
        common.rule_early_stopping_needs_validation("validation accuracy"),
    ),
)
