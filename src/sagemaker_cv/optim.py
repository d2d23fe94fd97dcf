"""Adapters from hyperparameters to MXNet optimizer arguments, and learning-rate schedules.

The schedule lives inside the optimizer (driven by its update count) so that it also holds when
updates run on a distributed kvstore, where Trainer.set_learning_rate has no effect.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


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
    name: str,
    *,
    learning_rate: float,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
    beta_1: float = 0.9,
    beta_2: float = 0.999,
    eps: float = 1e-8,
    gamma: float = 0.9,
    lr_scheduler=None,
    multi_precision: bool = False,
) -> dict:
    """Exactly the parameters the built-in documents for each optimizer; the others are ignored."""
    params: dict = {"learning_rate": learning_rate}
    if name in ("sgd", "nag"):
        params.update(momentum=momentum, wd=weight_decay)
    elif name == "adam":
        params.update(beta1=beta_1, beta2=beta_2, epsilon=eps)
    elif name == "rmsprop":
        params.update(gamma1=gamma, epsilon=eps)
    else:
        raise ValueError(f"optimizer {name!r} has no adapter")
    if lr_scheduler is not None:
        params["lr_scheduler"] = lr_scheduler
    if multi_precision:
        params["multi_precision"] = True
    return params
