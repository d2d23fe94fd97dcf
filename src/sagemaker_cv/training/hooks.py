"""The loop's hooks, and the one place that decides which run for a job (`standard_hooks`).

Hooks run in list order at each point of the loop: the checkpoint hook runs after evaluation and
before early stopping, so the best model is written before a decision to stop.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sagemaker_cv.contract import logs
from sagemaker_cv.training.engine import Hook, State, deferred
from sagemaker_cv.training.progress import LearningRecord, Outputs
from sagemaker_cv.training.task import Metrics, Task

log = logs.get("engine")


@dataclass(frozen=True)
class BatchReport:
    """What one batch line reported (the learning record's per-interval events read it)."""

    step: int
    speed: float  # samples/s since the previous line
    metrics: Metrics


class Speedometer(Hook):
    """The algorithm's batch line (`Epoch[0] Batch [20]\\tSpeed: ...`) every `interval` batches."""

    def __init__(self, interval: int):
        self.interval = max(1, interval)
        self.last: BatchReport | None = None

    def before_epoch(self, task: Task, state: State) -> None:
        self.batch = 0
        self.samples = 0
        self.tic = time.perf_counter()
        task.running_metrics()

    def after_step(self, task: Task, state: State, samples: int) -> None:
        self.batch += 1
        self.samples += samples
        if self.batch % self.interval == 0:
            # Reading the metrics waits for the devices to finish the batches counted here: before
            # the clock is read, or the speed would only measure how fast batches were queued.
            metrics = task.running_metrics()
            elapsed = max(time.perf_counter() - self.tic, 1e-9)
            task.log.batch(state.epoch, self.batch, self.samples / elapsed, metrics)
            self.last = BatchReport(state.step, self.samples / elapsed, metrics)
            self.samples = 0
            self.tic = time.perf_counter()


class EpochTimer(Hook):
    def before_epoch(self, task: Task, state: State) -> None:
        state.epoch_started = time.perf_counter()
        state.epoch_samples = 0

    def after_step(self, task: Task, state: State, samples: int) -> None:
        state.epoch_samples += samples

    def after_epoch(self, task: Task, state: State) -> None:
        seconds = time.perf_counter() - state.epoch_started
        state.epoch_seconds.append(seconds)
        task.log.train_epoch(state.epoch, task.train_metrics(), seconds, state.epoch_samples)
        for note in task.epoch_notes():
            log.warning(note)


class Evaluator(Hook):
    def after_epoch(self, task: Task, state: State) -> None:
        state.last_validation = task.evaluate()
        if state.last_validation is not None:
            task.log.validation(state.epoch, state.last_validation)


def score_of(task: Task, state: State) -> float | None:
    if state.last_validation is None:
        return None
    return dict(state.last_validation)[task.score_name]


class ModelWriter(Hook):
    """Writes the model files: the best epoch by validation score (replacing the previous best),
    or every `frequency` epochs (all kept), or the last epoch without validation data; and always
    something when training ends early. Only the primary host writes. (Checkpoints, which a
    restarted job resumes from, are checkpoint.CheckpointWriter's.)"""

    state_key = "model_writer"

    def __init__(self, enabled: bool, frequency: int | None = None, stop: threading.Event | None = None):
        self.enabled = enabled
        self.frequency = frequency
        self.stop = stop
        #: the best epoch's files, by name (they live in the model directory, which a restarted
        #: job may have elsewhere)
        self.best_files: list[str] = []

    def before_train(self, task: Task, state: State) -> None:
        if self.enabled and not self.frequency:
            log.info("checkpoint_frequency not set, will store the best model")

    def after_epoch(self, task: Task, state: State) -> None:
        number = state.epoch + 1
        score = score_of(task, state)
        if score is not None and (state.best_score is None or score > state.best_score):
            state.best_score, state.best_epoch = score, number
            task.log.new_best(state.epoch, task.score_name, score)
            if self.enabled and not self.frequency:
                self._replace_best(task, state, number)
        if not self.enabled:
            return
        if self.frequency and number % self.frequency == 0:
            self._write(task, state, number)
        elif score is None and not self.frequency:
            self._replace_best(task, state, number)  # no validation data: keep the latest epoch

    def after_train(self, task: Task, state: State) -> None:
        if not self.enabled or state.failed or state.saved_epoch is not None:
            return
        if not state.epoch_trained:
            log.info(
                "Training stopped before the first epoch finished: no model was written "
                "(an untrained network is not a model)"
            )
            return
        # Ended before any checkpoint was due (SIGTERM, or checkpoint_frequency longer than the
        # epochs run): keep what was learned, numbered as the epoch in progress.
        self._write(task, state, state.epoch + 1)

    def _replace_best(self, task: Task, state: State, number: int) -> None:
        files = self._write(task, state, number)
        names = [p.name for p in files]
        for name in self.best_files:
            old = files[0].parent / name
            if name not in names and old.exists():
                old.unlink()
        self.best_files = names

    def _write(self, task: Task, state: State, number: int) -> list[Path]:
        with deferred(self.stop):  # a stop never cuts a write short
            files = task.save(number)
        state.saved_epoch = number
        task.log.saved_files(files)
        return files

    def state_dict(self) -> dict[str, Any]:
        return {"best_files": list(self.best_files)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_files = list(state["best_files"])


class StopDecisions(Protocol):
    """How the hosts of a job agree on early stopping: the primary, which alone validates,
    publishes its decision after every epoch; every other host waits for it."""

    def publish(self, epoch: int, stop: bool) -> None: ...

    def wait(self, epoch: int) -> bool: ...


class EarlyStopping(Hook):
    """Stop when the validation score has not improved by a relative `tolerance` for `patience`
    epochs, once `min_epochs` have run. On several hosts the primary decides and `decisions`
    carries its decision to the others, so that every worker stops at the same epoch (dist_sync
    would hang otherwise)."""

    state_key = "early_stopping"

    def __init__(
        self,
        min_epochs: int,
        patience: int,
        tolerance: float,
        decisions: StopDecisions | None = None,
        primary: bool = True,
        primary_host: str = "",
    ):
        self.min_epochs, self.patience, self.tolerance = min_epochs, patience, tolerance
        self.decisions, self.primary, self.primary_host = decisions, primary, primary_host
        self.best: float | None = None
        self.stale = 0

    def after_epoch(self, task: Task, state: State) -> None:
        if not self.primary:
            if self.decisions.wait(state.epoch):  # blocks while the primary validates
                state.stop_reason = (
                    f"Early stopping at epoch {state.epoch}: decided by the primary host {self.primary_host}, "
                    "which validates"
                )
            return
        self._decide(task, state)
        if self.decisions is not None:
            self.decisions.publish(state.epoch, bool(state.stop_reason))

    def _decide(self, task: Task, state: State) -> None:
        score = score_of(task, state)
        if score is None:
            return
        improved = self.best is None or (
            score - self.best > self.tolerance * abs(self.best) if self.best else score > self.best
        )
        if improved:
            self.best, self.stale = score, 0
        else:
            self.stale += 1
        if state.epoch + 1 >= self.min_epochs and self.stale >= self.patience:
            state.stop_reason = (
                f"Early stopping at epoch {state.epoch}: validation {task.score_name} has not improved "
                f"by more than {self.tolerance} (relative) for {self.stale} epoch(s); best {self.best:f}"
            )

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "stale": self.stale}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.stale = state["best"], state["stale"]


class Eta(Hook):
    def after_epoch(self, task: Task, state: State) -> None:
        remaining = state.epochs - state.epoch - 1
        if remaining > 0 and state.epoch_seconds:
            mean = sum(state.epoch_seconds) / len(state.epoch_seconds)
            task.log.eta(state.epoch, remaining, mean * remaining)


class EpochEnd(Hook):
    """The algorithm's last line of an epoch, after everything else the epoch logged."""

    def after_epoch(self, task: Task, state: State) -> None:
        task.log.epoch_end(state.epoch, state.epochs)


class HostThroughput(Hook):
    """On several hosts, every host logs its own speed (only the primary's logs carry validation)."""

    def __init__(self, host: str, rank: int, num_workers: int):
        self.host, self.rank, self.num_workers = host, rank, num_workers

    def before_epoch(self, task: Task, state: State) -> None:
        self.tic, self.samples = time.perf_counter(), 0

    def after_step(self, task: Task, state: State, samples: int) -> None:
        self.samples += samples

    def after_epoch(self, task: Task, state: State) -> None:
        seconds = max(time.perf_counter() - self.tic, 1e-9)
        log.info(
            "Host %s (worker %d of %d): Epoch[%d] Throughput: %.2f samples/sec (%d samples in %.1f s)",
            self.host,
            self.rank,
            self.num_workers,
            state.epoch,
            self.samples / seconds,
            self.samples,
            seconds,
        )


def standard_hooks(
    task: Task,
    hp: Mapping[str, Any],
    *,
    primary: bool,
    decisions: StopDecisions | None = None,
    primary_host: str = "",
    stop: threading.Event | None = None,
    outputs: Outputs | None = None,
) -> list[Hook]:
    """The hooks of every job, in order. Only the primary writes; with `decisions` (several hosts)
    the primary's early-stopping decision is shared with the others; `stop` (the signal's stop
    request) is held off while the model is written; `outputs` says where the learning record
    (metrics file, curves, TensorBoard events) goes."""
    speedometer = Speedometer(task.log_interval)
    hooks: list[Hook] = [
        EpochTimer(),
        speedometer,
        Evaluator(),
        ModelWriter(enabled=primary, frequency=hp.get("checkpoint_frequency"), stop=stop),
    ]
    if hp.get("early_stopping"):
        hooks.append(
            EarlyStopping(
                hp["early_stopping_min_epochs"],
                hp["early_stopping_patience"],
                hp["early_stopping_tolerance"],
                decisions=decisions,
                primary=primary,
                primary_host=primary_host,
            )
        )
    hooks += [Eta(), EpochEnd()]
    if primary and outputs is not None:  # last: the epoch's every metric line is logged by then
        hooks.append(LearningRecord(outputs, speedometer, stop))
    return hooks
