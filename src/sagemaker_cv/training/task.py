"""The Task protocol: what differs between algorithms (network, data, loss, metrics, export, log
lines). Epochs, checkpoints, early stopping, SIGTERM and the ETA are written once in `engine` and
`hooks`; what every Gluon task shares (devices, optimizer, distribution) in `gluon_task`.

Framework-free, so that log-line modules and the engine's tests import no MXNet.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Metrics = list[tuple[str, float]]


class LogLines(ABC):
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

    def saved_files(self, files: list[Path]) -> None:
        """The line(s) for one checkpoint's files: by default `saved` for each .params file."""
        for path in files:
            if path.suffix == ".params":
                self.saved(path)

    def eta(self, epoch: int, remaining_epochs: int, seconds: float) -> None:  # noqa: B027
        """The estimated time left, where the built-in prints one."""

    def epoch_end(self, epoch: int, epochs: int) -> None:  # noqa: B027
        """After everything an epoch logs (e.g. `#progress_metric: ... completed 20 % of epochs`)."""


@dataclass(frozen=True)
class Prepared:
    """What `check_data` found and `setup` trains on: validated inputs, never stored on the task
    before `setup` receives them."""

    counts: dict[str, int]  # usable samples per split, for the log and `validate`
    notes: tuple[str, ...] = ()  # warnings to repeat after every epoch (e.g. skipped images)
    data: dict[str, Any] = field(default_factory=dict)  # the task's own prepared inputs, by split


class Task(ABC):
    """One algorithm. The runner calls check_data, then setup with what it returned; the engine
    then calls, per epoch, batches/train_step, train_metrics and evaluate, and save whenever a
    checkpoint is due."""

    #: name of the validation metric that selects the best model and drives early stopping
    score_name: str = ""
    log: LogLines
    #: the batch line is logged every this many batches
    log_interval: int = 20

    @abstractmethod
    def check_data(self) -> Prepared:
        """Validate every input file; return what setup needs. No training state."""

    @abstractmethod
    def setup(self, prepared: Prepared) -> None:
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
    def epoch_validation(self) -> Metrics | None:
        """Validation metrics, or None without validation data. Must include score_name."""

    @abstractmethod
    def save(self, epoch_number: int) -> list[Path]:
        """Write the model files for this (1-based) epoch number; return the files written."""

    def epoch_notes(self) -> list[str]:
        """Warnings to repeat at the end of every epoch (e.g. skipped images)."""
        return []

    def state_dict(self) -> dict[str, Any]:
        """What a restarted job needs to continue (weights and optimizer states live in files the
        task writes with `save_state`)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:  # noqa: B027
        """Restore what `state_dict` returned."""

    def close(self) -> None:  # noqa: B027 - optional for tasks that hold nothing
        """Release iterators and scratch files."""
