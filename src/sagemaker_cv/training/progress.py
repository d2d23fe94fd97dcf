"""What a job writes about its learning while it trains (the primary host only):

    output/data/metrics.jsonl          one JSON object per epoch: `epoch` and every metric
    output/data/training-curves.png    those values against epoch, redrawn after every epoch
    output/tensorboard/events.out.*    per-epoch metrics, learning rate, images/s; per-interval loss

The metrics file has one source with CloudWatch: the job's own log lines, read with the
algorithm's published MetricDefinitions regexes as they are logged (`MetricTap`), so the file holds
exactly the numbers SageMaker extracts, under the same names. A name read several times in an
epoch (the batch lines' metrics) holds the mean of its readings.

A failure to write any of these is a warning, never a failed job. A resumed job rewrites the
files from its checkpoint's history (a new container has none of them; a killed one may have
logged epochs its checkpoint does not have) and appends from there, so no epoch appears twice.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sagemaker_cv.contract import logs
from sagemaker_cv.contract.errors import TrainingInterrupted
from sagemaker_cv.contract.files import write_text_atomic
from sagemaker_cv.contract.paths import MLPaths, TensorBoardSettings
from sagemaker_cv.training import curves
from sagemaker_cv.training.engine import Hook, State, deferred
from sagemaker_cv.training.eventfile import EventWriter
from sagemaker_cv.training.task import Task

log = logs.get("engine")


@dataclass(frozen=True)
class Outputs:
    """Where a job's learning record goes, and the MetricDefinitions that read its log."""

    definitions: tuple[tuple[str, str], ...]
    metrics_file: Path
    curves_file: Path
    tensorboard_dir: Path

    @classmethod
    def for_job(
        cls, paths: MLPaths, definitions: Sequence[tuple[str, str]], environ: Mapping[str, str] | None = None
    ) -> Outputs:
        tensorboard = TensorBoardSettings.from_env(paths, environ)
        return cls(tuple(definitions), paths.metrics_file, paths.curves_file, tensorboard.directory)


class MetricTap(logging.Handler):
    """Reads every line the package logs with the MetricDefinitions regexes, as CloudWatch reads
    the job's output: the first group of a match is the value."""

    def __init__(self, definitions: Sequence[tuple[str, str]]):
        super().__init__(logging.INFO)
        self.definitions = [(name, re.compile(regex)) for name, regex in definitions]
        self.readings: dict[str, list[float]] = {}

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed log call is not ours to fail on
            return
        for name, regex in self.definitions:
            match = regex.search(line)
            if match:  # `handle` holds the handler's lock around `emit`
                self.readings.setdefault(name, []).append(float(match.group(1)))

    def take(self) -> dict[str, list[float]]:
        """The readings since the previous call, by name."""
        with self.lock:  # lines may be logged from other threads (data loaders, device threads)
            readings, self.readings = self.readings, {}
        return readings


def epoch_record(epoch: int, readings: dict[str, list[float]], names: Sequence[str]) -> dict[str, Any]:
    """One line of metrics.jsonl: the epoch, then each name read, in the definitions' order."""
    record: dict[str, Any] = {"epoch": epoch}
    for name in names:
        values = readings.get(name)
        if values:
            record[name] = values[0] if len(values) == 1 else sum(values) / len(values)
    return record


def tag(name: str) -> str:
    """A TensorBoard tag: `validation:mIOU` -> `validation/mIOU` (TensorBoard groups by the prefix)."""
    return name.replace(":", "/")


def learning_rate(task: Task, step: int) -> float | None:
    """The rate of update `step`, from the optimizer's schedule (a Gluon task's `trainer`). The
    schedule is asked with the job's step count: on a distributed kvstore the local optimizer
    never counts an update."""
    trainer = getattr(task, "trainer", None)
    optimizer = getattr(trainer, "optimizer", None)
    if optimizer is None:
        return None
    schedule = getattr(optimizer, "lr_scheduler", None)
    return float(schedule(step) if schedule is not None else optimizer.lr)


def loss_total(task: Task) -> tuple[float, int] | None:
    """(sum, count) of the training loss this epoch so far, where the task keeps one (a Gluon task's tally)."""
    tally = getattr(task, "tally", None)
    return tally.total("loss") if tally is not None else None


class LearningRecord(Hook):
    """Writes the three outputs. Runs after every other hook of an epoch (the epoch's last metric
    line, e.g. `#progress_metric`, is logged by then). `speedometer` gives the batch lines' values
    for the per-interval events; `stop` is held off while files are written."""

    state_key = "learning_record"

    def __init__(self, outputs: Outputs, speedometer=None, stop: threading.Event | None = None):
        self.names = [name for name, _ in outputs.definitions]
        self.tap = MetricTap(outputs.definitions)
        self.metrics_file, self.curves_file = outputs.metrics_file, outputs.curves_file
        self.tensorboard_dir = outputs.tensorboard_dir
        self.speedometer, self.stop = speedometer, stop
        self.records: list[dict[str, Any]] = []
        self.events: EventWriter | None = None
        self.failed: set[str] = set()
        self._reported = None
        self._loss_mark = (0.0, 0)

    # ---- the loop ---------------------------------------------------------------------------------

    def before_train(self, task: Task, state: State) -> None:
        logs.get().addHandler(self.tap)
        resumed = state.epoch_trained  # the engine loaded a checkpoint's state
        self.records = [r for r in self.records if resumed and r["epoch"] <= state.epoch]
        with deferred(self.stop):
            self._guard("metrics file", lambda: self._rewrite_metrics())
            if self.records:
                self._guard("curves", lambda: curves.plot(self.records, self.names, self.curves_file))
            first_step = state.step + 1 if resumed else 0
            self.events = self._guard("TensorBoard", lambda: EventWriter(self.tensorboard_dir, first_step))

    def before_epoch(self, task: Task, state: State) -> None:
        self.tap.take()  # lines logged between epochs belong to none
        self._loss_mark = (0.0, 0)  # the tally restarts with every epoch

    def after_step(self, task: Task, state: State, samples: int) -> None:
        report = getattr(self.speedometer, "last", None)
        if report is None or report is self._reported or self.events is None:
            return
        self._reported = report
        values = [(f"step/{name}", value) for name, value in report.metrics]
        values.append(("step/images_per_sec", report.speed))
        loss = self._interval_loss(task)
        if loss is not None:
            values.append(("step/loss", loss))
        rate = learning_rate(task, state.step)
        if rate is not None:
            values.append(("step/learning_rate", rate))
        with deferred(self.stop):
            self._guard("TensorBoard", lambda: self.events.scalars(state.step, values))

    def after_epoch(self, task: Task, state: State) -> None:
        record = epoch_record(state.epoch, self.tap.take(), self.names)
        self.records.append(record)
        with deferred(self.stop):
            self._guard("metrics file", lambda: self._append_metrics(record))
            self._guard("curves", lambda: curves.plot(self.records, self.names, self.curves_file))
            if self.events is not None:
                values = [(tag(k), v) for k, v in record.items() if k != "epoch"]
                values.append(("epoch/epoch", state.epoch))
                if state.epoch_seconds:
                    values.append(
                        ("epoch/images_per_sec", state.epoch_samples / max(state.epoch_seconds[-1], 1e-9))
                    )
                rate = learning_rate(task, state.step)
                if rate is not None:
                    values.append(("epoch/learning_rate", rate))
                self._guard("TensorBoard", lambda: self.events.scalars(state.step, values))

    def after_train(self, task: Task, state: State) -> None:
        logs.get().removeHandler(self.tap)
        if self.events is not None:
            self._guard("TensorBoard", self.events.close)
            self.events = None

    def state_dict(self) -> dict[str, Any]:
        return {"records": self.records}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.records = list(state["records"])

    # ---- writing ----------------------------------------------------------------------------------

    def _interval_loss(self, task: Task) -> float | None:
        total = loss_total(task)
        if total is None:
            return None
        (now_sum, now_count), (then_sum, then_count) = total, self._loss_mark
        self._loss_mark = total
        return (now_sum - then_sum) / (now_count - then_count) if now_count > then_count else None

    def _rewrite_metrics(self) -> None:
        text = "".join(json.dumps(r) + "\n" for r in self.records)
        self.metrics_file.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.metrics_file, text)

    def _append_metrics(self, record: dict[str, Any]) -> None:
        self.metrics_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.metrics_file, "a") as f:
            f.write(json.dumps(record) + "\n")  # one write: a killed job leaves whole lines

    def _guard(self, what: str, action):
        """Run `action`; a failure is a warning (once per output), never the job's end."""
        try:
            return action()
        except TrainingInterrupted:
            raise
        except Exception as exc:  # noqa: BLE001 - nothing written here may fail the job
            if what not in self.failed:
                self.failed.add(what)
                log.warning(
                    "Could not write the %s (%s: %s); training goes on without it, further failures "
                    "are not logged",
                    what,
                    type(exc).__name__,
                    exc,
                )
            return None
