"""The built-in segmenter's learning-rate schedules, counted in iterations (optimizer updates).

`learning_rate` is the pure decision; `IterationSchedule` puts it inside the optimizer, where a
distributed kvstore (whose servers receive a pickled copy of the optimizer) applies it too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import mxnet as mx

POLY_POWER = 0.9  # GluonCV's segmentation recipe


def learning_rate(
    kind: str,
    base_lr: float,
    iteration: int,
    total_iterations: int,
    step_iterations: Sequence[int] = (),
    factor: float = 0.1,
) -> float:
    """The rate for update number `iteration` (0-based) of `total_iterations`.

    poly: base x (1 - t/T)^0.9; cosine: base x (1 + cos(pi t/T)) / 2; step: base x factor^k after
    the k-th listed iteration."""
    t = min(max(iteration, 0), total_iterations)
    if kind == "poly":
        return base_lr * (1.0 - t / total_iterations) ** POLY_POWER
    if kind == "cosine":
        return base_lr * (1.0 + math.cos(math.pi * t / total_iterations)) / 2.0
    if kind == "step":
        return base_lr * factor ** sum(1 for s in step_iterations if iteration >= s)
    raise ValueError(f"unknown lr_scheduler {kind!r}")


class IterationSchedule(mx.lr_scheduler.LRScheduler):
    """`learning_rate` as an MXNet scheduler. The optimizer calls it with the count of updates
    made so far including the current one, so update n (1-based) gets iteration n - 1."""

    def __init__(
        self,
        kind: str,
        base_lr: float,
        total_iterations: int,
        step_iterations: Sequence[int] = (),
        factor: float = 0.1,
    ):
        super().__init__(base_lr=base_lr)
        self.kind, self.total = kind, max(1, total_iterations)
        self.steps, self.factor = tuple(step_iterations), factor

    def __call__(self, num_update: int) -> float:
        return learning_rate(self.kind, self.base_lr, num_update - 1, self.total, self.steps, self.factor)
