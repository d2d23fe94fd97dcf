"""The Task protocol: what differs between algorithms (network, data, loss, metrics, export, log
format). Everything else (epochs, schedule, checkpoints, early stopping, SIGTERM, distribution)
is written once in `engine`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any

Metrics = list[tuple[str, float]]


class Reporter(ABC):
    """One algorithm's log lines (users scrape them: keep them exact)."""

    @abstractmethod
    def batch(self, epoch: int, batch: int, speed: float, metrics: Metrics) -> None: ...

    @abstractmethod
    def train_epoch(self, epoch: int, metrics: Metrics, seconds: float, samples: int) -> None: ...

    @abstractmethod
    def validation(self, epoch: int, metrics: Metrics) -> None: ...

    @abstractmethod
    def new_best(self, epoch: int, name: str, score: float) -> None: ...

    @abstractmethod
    def saved(self, path: Path) -> None: ...


class Task(ABC):
    """One algorithm. The engine calls these in order: check_data, setup, then per epoch
    batches/train_step, train_metrics, evaluate; save whenever a checkpoint is due."""

    #: name of the validation metric that selects the best model and drives early stopping
    score_name: str = ""
    reporter: Reporter
    #: ImageNet-style tasks log the batch line every this many batches
    log_interval: int = 20

    @abstractmethod
    def check_data(self) -> dict[str, Any]:
        """Validate every input file; return a summary (counts per split). No training state."""

    @abstractmethod
    def setup(self) -> None:
        """Build the network, the iterators and the optimizer."""

    @abstractmethod
    def batches(self, epoch: int) -> Iterator[Any]:
        """One epoch's batches: the same number on every worker (dist_sync hangs otherwise)."""

    @abstractmethod
    def train_step(self, batch: Any) -> int:
        """Forward, backward and update on one batch; return the number of samples."""

    @abstractmethod
    def running_metrics(self) -> Metrics:
        """Training metrics since the previous call (for the batch lines)."""

    @abstractmethod
    def train_metrics(self) -> Metrics:
        """Training metrics over the whole epoch; resets them for the next one."""

    @abstractmethod
    def evaluate(self) -> Metrics | None:
        """Validation metrics, or None without validation data. Must include score_name."""

    @abstractmethod
    def save(self, epoch_number: int) -> list[Path]:
        """Write the model files for this (1-based) epoch number; return the files written."""

    def epoch_notes(self) -> list[str]:
        """Warnings to repeat at the end of every epoch (e.g. skipped images)."""
        return []

    def close(self) -> None:  # noqa: B027 - optional for tasks that hold nothing
        """Release iterators and scratch files."""
