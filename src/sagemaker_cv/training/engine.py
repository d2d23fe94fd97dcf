"""The one training loop, shared by every algorithm.

    before_train; for each epoch: before_epoch, (train_step, after_step)*, after_epoch; after_train

Timing, batch logs, evaluation, checkpoints, early stopping and the ETA are hooks (`hooks.py`). A
SIGTERM (docker stop, StopTrainingJob, MaxRuntime) lets the current batch finish, then the loop
ends and the checkpoint hook makes sure a model is on disk.
"""

from __future__ import annotations

import signal
import threading
from dataclasses import asdict, dataclass, field
from typing import Any

from sagemaker_cv.contract import logs
from sagemaker_cv.training.task import Metrics, Task

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

    # What a restarted job continues from: the epochs done and the best so far.
    _DURABLE = ("epoch", "step", "epoch_seconds", "best_score", "best_epoch", "saved_epoch")

    def state_dict(self) -> dict[str, Any]:
        """After epoch `epoch` ended: everything needed to go on with the next one."""
        return {k: v for k, v in asdict(self).items() if k in self._DURABLE}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key in self._DURABLE:
            setattr(self, key, state[key])


class Hook:
    def before_train(self, task: Task, state: State) -> None: ...
    def before_epoch(self, task: Task, state: State) -> None: ...
    def after_step(self, task: Task, state: State, samples: int) -> None: ...
    def after_epoch(self, task: Task, state: State) -> None: ...
    def after_train(self, task: Task, state: State) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        """What the hook must remember across a restart (most remember nothing)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def fit(
    task: Task,
    hooks: list[Hook],
    epochs: int,
    stop: threading.Event | None = None,
    resume: dict[str, Any] | None = None,
) -> State:
    """Train for `epochs` epochs. `resume` is a `State.state_dict()` taken after an epoch ended:
    training goes on with the next epoch."""
    state = State(epochs=epochs)
    first = 0
    if resume is not None:
        state.load_state_dict(resume)
        first = state.epoch + 1
    stop = stop or threading.Event()
    for hook in hooks:
        hook.before_train(task, state)
    try:
        for epoch in range(first, epochs):
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
