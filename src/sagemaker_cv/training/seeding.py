"""Random seeds that make a restarted job continue exactly where it stopped.

MXNet offers no way to read or restore the state of its generators (mx.random, an iterator's
shuffle and augmentation), so a checkpoint cannot hold them. Instead every source of randomness
is seeded from (job seed, epoch, ...) at the moment it is used: the weights' initialisation from
the job seed, every generator again at the start of each epoch, and each data iterator from the
epoch and its pass. The state at an epoch boundary is then a function of the epoch number, and a
job resumed after epoch N draws what an uninterrupted one draws in epoch N+1. The checkpoint
keeps the job seed.

SAGEMAKER_CV_SEED fixes the job seed; without it a random one is drawn and logged.
"""

from __future__ import annotations

import hashlib
import random
import secrets
from collections.abc import Mapping
from typing import Any

from sagemaker_cv.contract.environment import JobSettings
from sagemaker_cv.training.engine import Hook, State

SEED_ENV = "SAGEMAKER_CV_SEED"


def job_seed(environ: Mapping[str, str] | None = None) -> int:
    seed = JobSettings.from_env(environ).seed
    return secrets.randbelow(2**31) if seed is None else seed


def derive(seed: int, *parts: Any) -> int:
    """A seed for one use, e.g. derive(job_seed, "epoch", 3, rank): independent streams that
    depend only on their arguments."""
    text = ":".join(str(p) for p in (seed, *parts))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little") & 0x7FFFFFFF


def seed_all(seed: int) -> None:
    """Python's, NumPy's and MXNet's global generators (MXNet's on every device)."""
    import mxnet as mx
    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    mx.random.seed(seed)


class EpochSeeds(Hook):
    """Seeds every global generator from (job seed, epoch, rank) before each epoch."""

    def __init__(self, seed: int, rank: int):
        self.seed, self.rank = seed, rank

    def before_epoch(self, task, state: State) -> None:
        seed_all(derive(self.seed, "epoch", state.epoch, self.rank))
