"""The CreateAlgorithm request that registers this image as a SageMaker algorithm resource.

Registered, the image behaves like a built-in in the console and in tuning jobs: SageMaker checks
hyperparameters and channels against the TrainingSpecification and parses the metrics with its
MetricDefinitions, so callers need not pass them; its InferenceSpecification lets the models it
trains be deployed and batch transformed (`AlgorithmEstimator.deploy()`, `.transformer()`) with the
same image. Everything is generated from the schema, the metric definitions and the predictors,
so the specification cannot drift from what the container accepts.
"""

from __future__ import annotations

import importlib
import math
import re
import sys
from typing import Any

from sagemaker_cv import algorithms
from sagemaker_cv.algorithms.record import Algorithm
from sagemaker_cv.schema import Param
from sagemaker_cv.schema.base import BOOLEAN, IGNORED_KEYS

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
# Hosting and batch transform offer fewer of them: no ml.p3dn.24xlarge for either, no
# ml.p4d.24xlarge for batch transform (the API's ProductionVariantInstanceType and
# TransformInstanceType enums).
REALTIME_INSTANCE_TYPES = {
    "gpu": tuple(t for t in GPU_INSTANCE_TYPES if t != "ml.p3dn.24xlarge"),
    "cpu": CPU_INSTANCE_TYPES,
}
TRANSFORM_INSTANCE_TYPES = {
    "gpu": tuple(t for t in REALTIME_INSTANCE_TYPES["gpu"] if t != "ml.p4d.24xlarge"),
    "cpu": CPU_INSTANCE_TYPES,
}

# SageMaker's range specifications have no open bounds and no "unbounded": like AWS's own
# algorithm toolkit, a missing bound becomes the extreme 32-bit integer or float.
INT_MIN, INT_MAX = -(2**31), 2**31 - 1
FLOAT_MAX = sys.float_info.max

# Spellings the container accepts for a boolean, beyond the built-in's documented pair: SageMaker
# compares categorical values as exact strings, and the SDK v3 sends Python True as "true".
BOOLEAN_SPELLINGS = ("True", "False", "true", "false", "1", "0")

DESCRIPTION_LIMIT = 1024  # EntityDescription max length in the SageMaker API


def algorithm_spec(
    algorithm: str, image: str, *, name: str | None = None, flavor: str = "gpu"
) -> dict[str, Any]:
    """A CreateAlgorithm request for `algorithm` trained by the image at `image` (an ECR URI).

    `name` defaults to `sagemaker-cv-<algorithm>`; `flavor` ("gpu", the default image, or "cpu")
    decides which instance types the image supports.
    """
    record = algorithms.get(algorithm)  # raises ClientError naming the valid algorithms
    if flavor not in INSTANCE_TYPES:
        raise ValueError(f"flavor={flavor!r}: expected one of {', '.join(INSTANCE_TYPES)}")
    if not image or any(c.isspace() for c in image):
        raise ValueError(f"image={image!r}: expected an image URI without whitespace")
    algorithm_name = name or f"sagemaker-cv-{algorithm}"
    if not re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}", algorithm_name):
        raise ValueError(
            f"name={algorithm_name!r}: expected 1-63 letters, digits and hyphens, starting with a letter or digit"
        )
    hyperparameters = [_hyperparameter(p) for p in record.schema.params]
    hyperparameters += [_ignored_key(key, record) for key in IGNORED_KEYS]
    return {
        "AlgorithmName": algorithm_name,
        "AlgorithmDescription": record.description,
        "TrainingSpecification": {
            "TrainingImage": image,
            "SupportedHyperParameters": hyperparameters,
            "SupportedTrainingInstanceTypes": list(INSTANCE_TYPES[flavor]),
            "SupportsDistributedTraining": record.distributed,
            "MetricDefinitions": metric_definitions(record),
            "SupportedTuningJobObjectiveMetrics": objective_metrics(record),
            "TrainingChannels": [
                {
                    "Name": channel.name,
                    "Description": channel.description,
                    "IsRequired": channel.required,
                    "SupportedContentTypes": list(channel.content_types),
                    "SupportedInputModes": list(channel.input_modes),
                    "SupportedCompressionTypes": ["None"],
                }
                for channel in record.channels
            ],
        },
        **({"InferenceSpecification": inference_spec(record, image, flavor)} if record.predictor else {}),
    }


def inference_spec(record: Algorithm, image: str, flavor: str) -> dict[str, Any]:
    """The InferenceSpecification: the same image serves (`serve`), with the request and response
    types its predictor declares."""
    predictor = predictor_class(record)
    return {
        "Containers": [{"Image": image}],
        "SupportedTransformInstanceTypes": list(TRANSFORM_INSTANCE_TYPES[flavor]),
        "SupportedRealtimeInferenceInstanceTypes": list(REALTIME_INSTANCE_TYPES[flavor]),
        "SupportedContentTypes": list(predictor.content_types),
        "SupportedResponseMIMETypes": list(predictor.accepts),
    }


def predictor_class(record: Algorithm) -> type:
    """The ImagePredictor subclass of the algorithm's predict module (the module `predictor`
    names defines exactly one; importing it loads no framework)."""
    from sagemaker_cv.algorithms.inference import ImagePredictor

    module = importlib.import_module(record.predictor.partition(":")[0])
    found = [
        value
        for value in vars(module).values()
        if isinstance(value, type)
        and issubclass(value, ImagePredictor)
        and value.__module__ == module.__name__
    ]
    if len(found) != 1:
        raise ValueError(f"{module.__name__}: expected one ImagePredictor subclass, found {len(found)}")
    return found[0]


def _hyperparameter(p: Param) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "Name": p.name,
        "Description": _description(f"{p.description} Valid values: {p.valid_values()}."),
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


def _ignored_key(key: str, record: Algorithm) -> dict[str, Any]:
    # Tuning jobs add `_tuning_objective_metric` to every training job's hyperparameters, and
    # SageMaker checks a job's hyperparameters against this list: declared, it cannot be refused.
    return {
        "Name": key,
        "Description": _description(
            "Set by SageMaker hyperparameter tuning to the objective metric's name; ignored by the algorithm. "
            f"Objectives: {', '.join(record.objectives)}."
        ),
        "Type": "FreeText",
        "IsTunable": False,
        "IsRequired": False,
    }


def metric_definitions(record: Algorithm) -> list[dict[str, str]]:
    """SageMaker MetricDefinitions for a training job or an algorithm specification."""
    return [{"Name": name, "Regex": regex} for name, regex in record.metric_definitions]


def objective_metrics(record: Algorithm) -> list[dict[str, str]]:
    """The metrics a tuning job may optimise (all are maximised)."""
    return [{"Type": "Maximize", "MetricName": name} for name in record.objectives]


def _description(text: str) -> str:
    # The API's EntityDescription admits no control characters (its pattern excludes \p{C}).
    text = " ".join(text.split())
    if len(text) > DESCRIPTION_LIMIT:
        text = text[: DESCRIPTION_LIMIT - 3].rstrip() + "..."
    return text


def _float_text(x: float) -> str:
    return str(int(x)) if x.is_integer() and abs(x) < 1e15 else repr(x)
