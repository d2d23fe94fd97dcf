"""Optimizer arguments and learning-rate schedules.

The schedule lives inside the optimizer (driven by its update count) so that it also holds when
updates run on a distributed kvstore, where Trainer.set_learning_rate has no effect.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from sagemaker_cv.schema import Schema


def steps_per_epoch(num_samples: int, batch_size: int, num_workers: int = 1) -> int:
    """Global optimizer updates per epoch: every worker takes one batch per update."""
    return max(1, math.ceil(num_samples / (batch_size * num_workers)))


def step_schedule(base_lr: float, epochs: Sequence[int], factor: float, iters_per_epoch: int):
    """Multiply the learning rate by `factor` after each listed epoch (None when nothing to do)."""
    import mxnet as mx

    steps = [e * iters_per_epoch for e in epochs]
    if not steps:
        return None
    return mx.lr_scheduler.MultiFactorScheduler(step=steps, factor=factor, base_lr=base_lr)


def optimizer_params(
    schema: Schema, hp: Mapping[str, Any], *, lr_scheduler=None, multi_precision: bool = False
) -> dict[str, Any]:
    """Arguments for `mx.optimizer.create(hp["optimizer"], ...)`: what the schema documents for that
    optimizer, plus the schedule and mixed precision."""
    params = schema.optimizer_kwargs(hp)
    if lr_scheduler is not None:
        params["lr_scheduler"] = lr_scheduler
    if multi_precision:
        params["multi_precision"] = True
    return params
