"""The CreateAlgorithm request that registers this image as a SageMaker algorithm resource.

Registered, the image behaves like a built-in in the console and in tuning jobs: SageMaker checks
hyperparameters and channels against the TrainingSpecification and parses the metrics with its
MetricDefinitions, so callers need not pass them. Everything is generated from the schema and the
metric definitions, so the specification cannot drift from what the container accepts.
"""

from __future__ import annotations

import math
import re
import sys
from typing import Any

from sagemaker_cv.metrics import metric_definitions, objective_metrics
from sagemaker_cv.schema import Param, get_schema
from sagemaker_cv.schema.base import BOOLEAN, IGNORED_KEYS
from sagemaker_cv.schema.image_classification import IMAGE_CONTENT_TYPES

# mxnet-cu112 1.9.1 carries kernels for compute capability 5.0, 6.0, 7.0, 8.0 and 8.6
# (config/distribution/linux_cu112.cmake), so it runs on Volta (p3), Turing (g4dn, same major as
# sm_70), Ampere (p4d, g5) and Ada (g6, g6e: sm_89 runs sm_86 code). Not on the K80 (p2, sm_37)
# nor on Hopper (p5, sm_90): no sm_90 code, and no PTX to JIT from is guaranteed.
GPU_INSTANCE_TYPES = (
    "ml.p3.2xlarge", "ml.p3.8xlarge", "ml.p3.16xlarge", "ml.p3dn.24xlarge",
    "ml.g4dn.xlarge", "ml.g4dn.2xlarge", "ml.g4dn.4xlarge", "ml.g4dn.8xlarge", "ml.g4dn.12xlarge", "ml.g4dn.16xlarge",
    "ml.g5.xlarge", "ml.g5.2xlarge", "ml.g5.4xlarge", "ml.g5.8xlarge", "ml.g5.12xlarge", "ml.g5.16xlarge",
    "ml.g5.24xlarge", "ml.g5.48xlarge",
    "ml.g6.xlarge", "ml.g6.2xlarge", "ml.g6.4xlarge", "ml.g6.8xlarge", "ml.g6.12xlarge", "ml.g6.16xlarge",
    "ml.g6.24xlarge", "ml.g6.48xlarge",
    "ml.p4d.24xlarge",
)  # fmt: skip
# The CPU flavor (mxnet without CUDA) runs anywhere; these are the general-purpose and compute
# families that have enough memory for the data loaders.
CPU_INSTANCE_TYPES = (
    "ml.m5.large", "ml.m5.xlarge", "ml.m5.2xlarge", "ml.m5.4xlarge", "ml.m5.12xlarge", "ml.m5.24xlarge",
    "ml.c5.xlarge", "ml.c5.2xlarge", "ml.c5.4xlarge", "ml.c5.9xlarge", "ml.c5.18xlarge",
)  # fmt: skip
INSTANCE_TYPES = {"gpu": GPU_INSTANCE_TYPES, "cpu": CPU_INSTANCE_TYPES}

# SageMaker's range specifications have no open bounds and no "unbounded": like AWS's own
# algorithm toolkit, a missing bound becomes the extreme 32-bit integer or float.
INT_MIN, INT_MAX = -(2**31), 2**31 - 1
FLOAT_MAX = sys.float_info.max

# Spellings the container accepts for a boolean, beyond the built-in's documented pair: SageMaker
# compares categorical values as exact strings, and the SDK v3 sends Python True as "true".
BOOLEAN_SPELLINGS = ("True", "False", "true", "false", "1", "0")

DESCRIPTION_LIMIT = 1024  # EntityDescription max length in the SageMaker API

RECORDIO = "application/x-recordio"
JSON = "application/json"

# (name, required, content types, description) per algorithm, in the order SageMaker shows them.
_CHANNELS: dict[str, tuple[tuple[str, bool, tuple[str, ...], str], ...]] = {
    "image-classification": (
        ("train", True, (RECORDIO, *IMAGE_CONTENT_TYPES),
         "Training data: one RecordIO (.rec) file, or the images listed by the train_lst channel."),
        ("validation", False, (RECORDIO, *IMAGE_CONTENT_TYPES),
         "Validation data: one RecordIO (.rec) file, or the images listed by the validation_lst channel."),
        ("train_lst", False, IMAGE_CONTENT_TYPES,
         "Image input only: .lst file(s) (index, label(s), relative path; tab-separated) for the train images."),
        ("validation_lst", False, IMAGE_CONTENT_TYPES,
         "Image input only: .lst file(s) for the validation images."),
        # No `model` channel (application/x-sagemaker-model): the trainer refuses incremental training for
        # now, and SageMaker would otherwise accept jobs that are bound to fail. Add it back here
        # when the trainer reads a model.tar.gz.
    ),
    "object-detection": (
        ("train", True, (RECORDIO, "image/jpeg", "image/png", "application/x-image"),
         "Training data: one RecordIO (.rec) file, or JPEG/PNG images annotated by train_annotation."),
        ("validation", True, (RECORDIO, "image/jpeg", "image/png", "application/x-image"),
         "Validation data: one RecordIO (.rec) file, or images annotated by validation_annotation."),
        ("train_annotation", False, ("image/jpeg", "image/png", "application/x-image", JSON),
         "Image input only: one JSON annotation file per training image."),
        ("validation_annotation", False, ("image/jpeg", "image/png", "application/x-image", JSON),
         "Image input only: one JSON annotation file per validation image."),
    ),
    "semantic-segmentation": (
        ("train", True, ("image/jpeg", "image/png", "application/x-image"), "Training images (JPEG)."),
        ("validation", True, ("image/jpeg", "image/png", "application/x-image"), "Validation images (JPEG)."),
        ("train_annotation", True, ("image/png", "image/jpeg", "application/x-image"),
         "One PNG label image per training image, same file name stem."),
        ("validation_annotation", True, ("image/png", "image/jpeg", "application/x-image"),
         "One PNG label image per validation image, same file name stem."),
        ("label_map", False, (JSON, "image/png", "image/jpeg", "application/x-image"),
         "Optional train_label_map.json / validation_label_map.json mapping label values to classes."),
    ),
}  # fmt: skip

# The built-ins: image classification and object detection train on several hosts, semantic
# segmentation on one (see the SageMaker documentation's table of built-in algorithms).
_DISTRIBUTED = {"image-classification": True, "object-detection": True, "semantic-segmentation": False}

_DESCRIPTIONS = {
    "image-classification": "Image classification (ResNet, MXNet + GluonCV), compatible with SageMaker's built-in "
    "image-classification algorithm: same hyperparameters, channels, log lines and model artifacts.",
    "object-detection": "Object detection (SSD with VGG-16 or ResNet-50, MXNet + GluonCV), compatible with "
    "SageMaker's built-in object-detection algorithm.",
    "semantic-segmentation": "Semantic segmentation (FCN, PSP or DeepLabV3, MXNet + GluonCV), compatible with "
    "SageMaker's built-in semantic-segmentation algorithm.",
}


def algorithm_spec(
    algorithm: str, image: str, *, name: str | None = None, flavor: str = "gpu"
) -> dict[str, Any]:
    """A CreateAlgorithm request for `algorithm` trained by the image at `image` (an ECR URI).

    `name` defaults to `sagemaker-cv-<algorithm>`; `flavor` ("gpu", the default image, or "cpu")
    decides which instance types the image supports.
    """
    schema = get_schema(algorithm)  # raises ClientError naming the valid algorithms
    if flavor not in INSTANCE_TYPES:
        raise ValueError(f"flavor={flavor!r}: expected one of {', '.join(INSTANCE_TYPES)}")
    if not image or any(c.isspace() for c in image):
        raise ValueError(f"image={image!r}: expected an image URI without whitespace")
    algorithm_name = name or f"sagemaker-cv-{algorithm}"
    if not re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}", algorithm_name):
        raise ValueError(
            f"name={algorithm_name!r}: expected 1-63 letters, digits and hyphens, starting with a letter or digit"
        )
    hyperparameters = [_hyperparameter(p) for p in schema.params]
    hyperparameters += [_ignored_key(key, algorithm) for key in IGNORED_KEYS]
    return {
        "AlgorithmName": algorithm_name,
        "AlgorithmDescription": _DESCRIPTIONS[algorithm],
        "TrainingSpecification": {
            "TrainingImage": image,
            "SupportedHyperParameters": hyperparameters,
            "SupportedTrainingInstanceTypes": list(INSTANCE_TYPES[flavor]),
            "SupportsDistributedTraining": _DISTRIBUTED[algorithm],
            "MetricDefinitions": metric_definitions(algorithm),
            "SupportedTuningJobObjectiveMetrics": objective_metrics(algorithm),
            "TrainingChannels": [
                {
                    "Name": channel,
                    "Description": description,
                    "IsRequired": required,
                    "SupportedContentTypes": list(content_types),
                    # File only: FastFile looks the same to the container, but the trainer has no
                    # Pipe reader, and advertising FastFile would promise untested behavior.
                    "SupportedInputModes": ["File"],
                    "SupportedCompressionTypes": ["None"],
                }
                for channel, required, content_types, description in _CHANNELS[algorithm]
            ],
        },
    }


def _hyperparameter(p: Param) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "Name": p.name,
        "Description": _description(f"{p.doc} Valid values: {p.valid_values()}."),
        "IsTunable": p.tunable,
        "IsRequired": p.required,
    }
    if p.kind is BOOLEAN:
        true_word, false_word = p.bool_words[1], p.bool_words[0]
        values = [true_word, false_word] + [v for v in BOOLEAN_SPELLINGS if v not in (true_word, false_word)]
        spec["Type"] = "Categorical"
        spec["Range"] = {"CategoricalParameterRangeSpecification": {"Values": values}}
    elif p.choices:
        # Integer parameters with a fixed set (num_layers) are categorical for SageMaker too:
        # an integer range would let a tuning job pick depths the network does not have.
        spec["Type"] = "Categorical"
        spec["Range"] = {"CategoricalParameterRangeSpecification": {"Values": [str(c) for c in p.choices]}}
    elif p.kind.sagemaker_type == "Integer":
        spec["Type"] = "Integer"
        low = (
            INT_MIN if p.low is None else math.ceil(p.low) + (1 if p.low_open and p.low == int(p.low) else 0)
        )
        high = (
            INT_MAX
            if p.high is None
            else math.floor(p.high) - (1 if p.high_open and p.high == int(p.high) else 0)
        )
        spec["Range"] = {"IntegerParameterRangeSpecification": {"MinValue": str(low), "MaxValue": str(high)}}
    elif p.kind.sagemaker_type == "Continuous":
        spec["Type"] = "Continuous"
        # An open bound becomes the next representable float inside it, so a tuning job can never
        # propose a value the container rejects.
        low = (
            -FLOAT_MAX if p.low is None else (math.nextafter(p.low, math.inf) if p.low_open else float(p.low))
        )
        high = (
            FLOAT_MAX
            if p.high is None
            else (math.nextafter(p.high, -math.inf) if p.high_open else float(p.high))
        )
        spec["Range"] = {
            "ContinuousParameterRangeSpecification": {
                "MinValue": _float_text(low),
                "MaxValue": _float_text(high),
            }
        }
    else:
        spec["Type"] = p.kind.sagemaker_type  # FreeText: no range
    if p.default is not None:
        spec["DefaultValue"] = p.default_text()
    return spec


def _ignored_key(key: str, algorithm: str) -> dict[str, Any]:
    # Tuning jobs add `_tuning_objective_metric` to every training job's hyperparameters, and
    # SageMaker checks a job's hyperparameters against this list: declared, it cannot be refused.
    return {
        "Name": key,
        "Description": _description(
            "Set by SageMaker hyperparameter tuning to the objective metric's name; ignored by the algorithm. "
            f"Objectives: {', '.join(m['MetricName'] for m in objective_metrics(algorithm))}."
        ),
        "Type": "FreeText",
        "IsTunable": False,
        "IsRequired": False,
    }


def _description(text: str) -> str:
    # The API's EntityDescription admits no control characters (its pattern excludes \p{C}).
    text = " ".join(text.split())
    if len(text) > DESCRIPTION_LIMIT:
        text = text[: DESCRIPTION_LIMIT - 3].rstrip() + "..."
    return text


def _float_text(x: float) -> str:
    return str(int(x)) if x.is_integer() and abs(x) < 1e15 else repr(x)
