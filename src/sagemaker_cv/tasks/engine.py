"""The one training loop, shared by every algorithm.

    before_train; for each epoch: before_epoch, (train_step, after_step)*, after_epoch; after_train

Timing, batch logs, evaluation, checkpoints, early stopping, the ETA and SIGTERM are hooks. A
SIGTERM (docker stop, StopTrainingJob, MaxRuntime) lets the current batch finish, then the loop
ends and the checkpoint hook makes sure a model is on disk.
"""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from sagemaker_cv import logs, metrics
from sagemaker_cv.tasks.base import Metrics, Task

log = logs.get("engine")


@dataclass
class State:
    epochs: int
    epoch: int = 0
    step: int = 0
    epoch_started: float = 0.0
    epoch_seconds: list[float] = field(default_factory=list)
    epoch_samples: int = 0
    last_validation: Metrics | None = None
    best_score: float | None = None
    best_epoch: int | None = None
    saved_epoch: int | None = None  # the (1-based) epoch number on disk, if any
    stop_reason: str | None = None  # set by a hook to end training after this epoch
    interrupted: bool = False  # SIGTERM: end after the current batch
    failed: bool = False  # an exception ends the loop: nothing more is written


class Hook:
    def before_train(self, task: Task, state: State) -> None: ...
    def before_epoch(self, task: Task, state: State) -> None: ...
    def after_step(self, task: Task, state: State, samples: int) -> None: ...
    def after_epoch(self, task: Task, state: State) -> None: ...
    def after_train(self, task: Task, state: State) -> None: ...


def fit(task: Task, hooks: list[Hook], epochs: int, stop: threading.Event | None = None) -> State:
    state = State(epochs=epochs)
    stop = stop or threading.Event()
    for hook in hooks:
        hook.before_train(task, state)
    try:
        for epoch in range(epochs):
            state.epoch = epoch
            for hook in hooks:
                hook.before_epoch(task, state)
            for batch in task.batches(epoch):
                samples = task.train_step(batch)
                state.step += 1
                for hook in hooks:
                    hook.after_step(task, state, samples)
                if stop.is_set():
                    state.interrupted = True
                    break
            if state.interrupted:
                log.info(
                    "Stop requested (SIGTERM): ending training after epoch %d batch %d", epoch, state.step
                )
                break
            for hook in hooks:
                hook.after_epoch(task, state)
            if stop.is_set():
                state.interrupted = True
                log.info("Stop requested (SIGTERM): ending training after epoch %d", epoch)
                break
            if state.stop_reason:
                log.info(state.stop_reason)
                break
    except BaseException:
        state.failed = True
        raise
    finally:
        for hook in hooks:
            hook.after_train(task, state)
    return state


class Speedometer(Hook):
    """`Epoch[0] Batch [20]\\tSpeed: ... samples/sec\\taccuracy=...` every `interval` batches."""

    def __init__(self, interval: int):
        self.interval = max(1, interval)

    def before_epoch(self, task: Task, state: State) -> None:
        self.batch = 0
        self.samples = 0
        self.tic = time.perf_counter()
        task.running_metrics()

    def after_step(self, task: Task, state: State, samples: int) -> None:
        self.batch += 1
        self.samples += samples
        if self.batch % self.interval == 0:
            elapsed = max(time.perf_counter() - self.tic, 1e-9)
            task.reporter.batch(state.epoch, self.batch, self.samples / elapsed, task.running_metrics())
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
        task.reporter.train_epoch(state.epoch, task.train_metrics(), seconds, state.epoch_samples)
        for note in task.epoch_notes():
            log.warning(note)


class Evaluator(Hook):
    def __init__(self, enabled: bool = True):
        self.enabled = enabled

    def after_epoch(self, task: Task, state: State) -> None:
        state.last_validation = task.evaluate() if self.enabled else None
        if state.last_validation is not None:
            task.reporter.validation(state.epoch, state.last_validation)


def score_of(task: Task, state: State) -> float | None:
    if state.last_validation is None:
        return None
    return dict(state.last_validation)[task.score_name]


class Checkpointer(Hook):
    """Writes the model: the best epoch by validation score (replacing the previous best), or every
    `frequency` epochs (all kept), or the last epoch without validation data; and always something
    when training ends early. Only the primary host writes."""

    def __init__(self, enabled: bool, frequency: int | None = None):
        self.enabled = enabled
        self.frequency = frequency
        self.best_files: list[Path] = []

    def before_train(self, task: Task, state: State) -> None:
        if self.enabled and not self.frequency:
            log.info("checkpoint_frequency not set, will store the best model")

    def after_epoch(self, task: Task, state: State) -> None:
        number = state.epoch + 1
        score = score_of(task, state)
        if score is not None and (state.best_score is None or score > state.best_score):
            state.best_score, state.best_epoch = score, number
            task.reporter.new_best(state.epoch, task.score_name, score)
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
        # Ended before any checkpoint was due (SIGTERM, or checkpoint_frequency longer than the
        # epochs run): keep what was learned, numbered as the epoch in progress.
        self._write(task, state, state.epoch + 1)

    def _replace_best(self, task: Task, state: State, number: int) -> None:
        files = self._write(task, state, number)
        for old in self.best_files:
            if old not in files and old.exists():
                old.unlink()
        self.best_files = files

    def _write(self, task: Task, state: State, number: int) -> list[Path]:
        files = task.save(number)
        state.saved_epoch = number
        for path in files:
            if path.suffix == ".params":
                task.reporter.saved(path)
        return files


class EarlyStopping(Hook):
    """Stop when the validation score has not improved by a relative `tolerance` for `patience`
    epochs, once `min_epochs` have run."""

    def __init__(self, min_epochs: int, patience: int, tolerance: float):
        self.min_epochs, self.patience, self.tolerance = min_epochs, patience, tolerance
        self.best: float | None = None
        self.stale = 0

    def after_epoch(self, task: Task, state: State) -> None:
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


class Eta(Hook):
    def after_epoch(self, task: Task, state: State) -> None:
        remaining = state.epochs - state.epoch - 1
        if remaining > 0 and state.epoch_seconds:
            mean = sum(state.epoch_seconds) / len(state.epoch_seconds)
            log.info(metrics.eta_line(state.epoch, remaining, mean * remaining))


class StopOnSignal:
    """Turns SIGTERM (and SIGINT) into a flag the loop checks after every batch."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self._previous: dict = {}

    def __enter__(self) -> threading.Event:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self.event

    def _handle(self, signum, frame) -> None:
        log.info(
            "Received %s: finishing the current batch, then saving the model", signal.Signals(signum).name
        )
        self.event.set()

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
