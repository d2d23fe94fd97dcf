"""Parameters and rules that several algorithms share, spelled once."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sagemaker_cv.schema.base import BOOLEAN, CATEGORICAL, FLOAT, INTEGER, STRING, Context, Param, epoch_list


def num_classes(low: int = 1, high: int | None = None) -> Param:
    return Param("num_classes", INTEGER, "Number of output classes.", required=True, low=low, high=high)


def num_training_samples() -> Param:
    return Param(
        "num_training_samples",
        INTEGER,
        "Number of training examples in the whole input dataset; sets up the learning-rate schedule "
        "(iterations per epoch).",
        required=True,
        low=1,
    )


def epochs(default: int) -> Param:
    return Param("epochs", INTEGER, "Number of training epochs.", default=default, low=1)


def early_stopping(metric: str, min_epochs: int, patience: int, min_epochs_low: int = 1) -> tuple[Param, ...]:
    return (
        Param(
            "early_stopping",
            BOOLEAN,
            f"True to stop training when {metric} stops improving.",
            default=False,
        ),
        Param(
            "early_stopping_min_epochs",
            INTEGER,
            "Minimum number of epochs before early stopping can end training.",
            default=min_epochs,
            low=min_epochs_low,
        ),
        Param(
            "early_stopping_patience",
            INTEGER,
            f"Epochs without improvement of {metric} before training ends.",
            default=patience,
            low=1,
        ),
        Param(
            "early_stopping_tolerance",
            FLOAT,
            f"Relative improvement of {metric} below which an epoch counts as not improved.",
            default=0.0,
            low=0,
            high=1,
        ),
    )


def kv_store(doc_suffix: str = "") -> Param:
    return Param(
        "kv_store",
        CATEGORICAL,
        "Weight synchronisation between hosts in distributed training: dist_sync or dist_async. "
        "Not applicable to single-host training." + doc_suffix,
        choices=("dist_sync", "dist_async"),
    )


def precision_dtype() -> Param:
    return Param(
        "precision_dtype",
        CATEGORICAL,
        "float32, or float16 (GPU only: half-precision weights with float32 master copies).",
        default="float32",
        choices=("float32", "float16"),
    )


def lr_scheduler_step(doc: str) -> Param:
    return Param(
        "lr_scheduler_step",
        STRING,
        doc,
        convert=epoch_list,
        valid_text="comma-separated ascending epochs, e.g. '10, 20'",
    )


# ---- rules ------------------------------------------------------------------------------------


def rule_schedule_below_epochs(values: Mapping[str, Any], ctx: Context) -> list[str]:
    steps = values.get("lr_scheduler_step") or ()
    late = [s for s in steps if s >= values["epochs"]]
    if late:
        return [
            f"lr_scheduler_step={','.join(map(str, steps))}: every epoch must be below epochs={values['epochs']} "
            f"(got {','.join(map(str, late))})"
        ]
    return []


def rule_float16_needs_gpu(values: Mapping[str, Any], ctx: Context) -> list[str]:
    if values.get("precision_dtype") == "float16" and ctx.num_gpus == 0:
        return [
            "precision_dtype=float16: needs a GPU instance (MXNet has no float16 convolutions on CPU); "
            "use float32 or a GPU instance type"
        ]
    return []


def rule_kv_store_hosts(values: Mapping[str, Any], ctx: Context) -> tuple[list[str], list[str]]:
    if values.get("kv_store") and ctx.num_hosts == 1:
        return [], [
            f"kv_store={values['kv_store']} has no effect on a single host; training uses the local store"
        ]
    return [], []


def rule_early_stopping_needs_validation(metric: str):
    def rule(values: Mapping[str, Any], ctx: Context) -> list[str]:
        if values.get("early_stopping") and ctx.content_types and "validation" not in ctx.content_types:
            return [f"early_stopping=True needs a validation channel to measure {metric}"]
        return []

    return rule
