"""The one training loop, shared by every algorithm.

    before_train; for each epoch: before_epoch, (train_step, after_step)*, after_epoch; after_train

Timing, batch logs, evaluation, checkpoints, early stopping and the ETA are hooks (`hooks.py`). A
SIGTERM (docker stop, StopTrainingJob, MaxRuntime) lets the current batch (or a model write)
finish, then the loop ends and the checkpoint hook keeps what was learned; during validation it
ends the loop at once (see StopOnSignal).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from typing import Any

from sagemaker_cv.contract import logs
from sagemaker_cv.contract.errors import TrainingInterrupted
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
    epoch_trained: bool = False  # some epoch's batches all ran (in this run, or before a resume)

    # What a restarted job continues from: the epochs done and the best so far.
    _DURABLE = ("epoch", "step", "epoch_seconds", "best_score", "best_epoch", "saved_epoch")

    def state_dict(self) -> dict[str, Any]:
        """After epoch `epoch` ended: everything needed to go on with the next one."""
        return {k: v for k, v in asdict(self).items() if k in self._DURABLE}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key in self._DURABLE:
            setattr(self, key, state[key])


class Hook:
    #: the name under which a checkpoint keeps this hook's `state_dict()`; None: the hook
    #: remembers nothing across a restart. Stable across versions (class names are not).
    state_key: str | None = None

    def before_train(self, task: Task, state: State) -> None: ...
    def before_epoch(self, task: Task, state: State) -> None: ...
    def after_step(self, task: Task, state: State, samples: int) -> None: ...
    def after_epoch(self, task: Task, state: State) -> None: ...
    def after_train(self, task: Task, state: State) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        """What the hook must remember across a restart (hooks with a `state_key`)."""
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
    training goes on with the next epoch.

    A stop request (`stop` set, by a signal or a hook) ends the loop after the batch in progress;
    only while the epoch's hooks run (validation can take minutes) does a signal interrupt them."""
    state = State(epochs=epochs)
    first = 0
    if resume is not None:
        state.load_state_dict(resume)
        state.epoch_trained = True
        first = state.epoch + 1
    stop = stop or threading.Event()
    # A stop never cuts a batch or a model write short (on several hosts every worker must finish
    # its step); the loop checks the flag between batches.
    with deferred(stop):
        for hook in hooks:
            hook.before_train(task, state)
        try:
            for epoch in range(first, epochs):
                state.epoch = epoch
                for hook in hooks:
                    hook.before_epoch(task, state)
                _train_epoch(task, hooks, state, stop)
                if state.interrupted:
                    log.info(
                        "Stop requested (SIGTERM): ending training after epoch %d batch %d", epoch, state.step
                    )
                    break
                state.epoch_trained = True
                try:
                    with interruptible(stop):
                        for hook in hooks:
                            hook.after_epoch(task, state)
                except TrainingInterrupted:  # raised by the signal handler while validating
                    state.interrupted = True
                if state.interrupted or stop.is_set():
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


def _train_epoch(task: Task, hooks: list[Hook], state: State, stop: threading.Event) -> None:
    """One epoch's batches; a stop request ends it after the batch in progress."""
    for batch in task.batches(state.epoch):
        samples = task.train_step(batch)
        state.step += 1
        for hook in hooks:
            hook.after_step(task, state, samples)
        if stop.is_set():
            state.interrupted = True
            return


def deferred(stop: threading.Event | None):
    """Defer a stop request's interruption while the block runs, if `stop` is a signal's."""
    return stop.deferred() if isinstance(stop, StopRequest) else nullcontext()


def interruptible(stop: threading.Event | None):
    """Let a signal interrupt the block at once, if `stop` is a signal's."""
    return stop.interruptible() if isinstance(stop, StopRequest) else nullcontext()


class StopRequest(threading.Event):
    """A stop asked for by a signal. Outside `deferred()` blocks the handler also raises
    TrainingInterrupted at once, so that preparing data, building the network or validating
    (minutes, for large inputs) end within seconds; inside them (a training batch, a model
    write) only the flag is set, and whoever runs the block checks it afterwards."""

    def __init__(self) -> None:
        super().__init__()
        self._deferring = 0
        self._raised = False
        self.signal_name = "SIGTERM"

    @contextmanager
    def deferred(self) -> Iterator[None]:
        self._deferring += 1
        try:
            yield
        finally:
            self._deferring -= 1

    @contextmanager
    def interruptible(self) -> Iterator[None]:
        """Inside a deferred block: a block that a signal interrupts at once (and that does not
        start when a stop was asked for already)."""
        outer, self._deferring = self._deferring, 0
        try:
            if self.is_set() and not self._raised:
                self._raised = True
                raise TrainingInterrupted(self.signal_name)
            yield
        finally:
            self._deferring = outer

    def request(self, name: str) -> None:
        """Called by the signal handler (in the main thread, between two bytecodes)."""
        self.signal_name = name
        self.set()
        if not self._deferring and not self._raised:
            self._raised = True  # once: a second signal must not break the clean-up that follows
            raise TrainingInterrupted(name)


class StopOnSignal:
    """Turns SIGTERM (and SIGINT) into a StopRequest for as long as the `with` block runs."""

    def __init__(self) -> None:
        self.event = StopRequest()
        self._previous: dict = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self.event

    def _handle(self, signum, frame) -> None:
        name = signal.Signals(signum).name
        log.info("Received %s: finishing the current batch, then saving the model", name)
        self.event.request(name)

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
