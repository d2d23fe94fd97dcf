"""The shared loop on a toy task (no framework): checkpoints, early stopping, stop requests."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from sagemaker_cv.contract.errors import TrainingInterrupted
from sagemaker_cv.training import engine
from sagemaker_cv.training import hooks as h
from sagemaker_cv.training.task import LogLines, Prepared, Task


class Recorder(LogLines):
    def __init__(self):
        self.lines = []

    def batch(self, epoch, batch, speed, metrics):
        self.lines.append(("batch", epoch, batch))

    def train_epoch(self, epoch, metrics, seconds, samples):
        self.lines.append(("train", epoch, samples))

    def validation(self, epoch, metrics):
        self.lines.append(("validation", epoch, dict(metrics)["accuracy"]))

    def new_best(self, epoch, name, score):
        self.lines.append(("best", epoch, score))

    def saved(self, path):
        self.lines.append(("saved", path.name))


class ToyTask(Task):
    """Scores come from a list; saving writes empty files named like the built-in's."""

    score_name = "accuracy"

    def __init__(self, tmp: Path, scores, steps=3, stop_after=None, stop_event=None):
        self.log = Recorder()
        self.tmp, self.scores, self.steps = tmp, None if scores is None else list(scores), steps
        self.stop_after, self.stop_event = stop_after, stop_event
        self.trained = 0

    def check_data(self):
        return Prepared({})

    def setup(self, prepared):
        pass

    def batches(self, epoch):
        for i in range(self.steps):
            yield (epoch, i)

    def train_step(self, batch):
        self.trained += 1
        if self.stop_after is not None and self.trained == self.stop_after:
            self.stop_event.set()
        return 4

    def running_metrics(self):
        return [("accuracy", 0.5)]

    def train_metrics(self):
        return [("accuracy", 0.5)]

    def evaluate(self):
        return None if self.scores is None else [("accuracy", self.scores.pop(0))]

    def save(self, epoch_number):
        files = [self.tmp / "m-symbol.json", self.tmp / f"m-{epoch_number:04d}.params"]
        for f in files:
            f.write_text(str(epoch_number))
        return files


def hooks(frequency=None, early=None, stop=None):
    out = [
        h.EpochTimer(),
        h.Speedometer(2),
        h.Evaluator(),
        h.ModelWriter(True, frequency, stop=stop),
    ]
    if early:
        out.append(h.EarlyStopping(*early))
    return out + [h.Eta()]


def params(tmp):
    return sorted(p.name for p in tmp.glob("*.params"))


def test_keeps_only_the_best_epoch(tmp_path):
    task = ToyTask(tmp_path, [0.2, 0.5, 0.4, 0.6, 0.1])
    state = engine.fit(task, hooks(), epochs=5)
    assert params(tmp_path) == ["m-0004.params"]
    assert (state.best_score, state.best_epoch, state.saved_epoch) == (0.6, 4, 4)
    assert ("batch", 0, 2) in task.log.lines and ("train", 0, 12) in task.log.lines


def test_checkpoint_frequency_keeps_every_nth(tmp_path):
    task = ToyTask(tmp_path, [0.2, 0.5, 0.4, 0.6, 0.1])
    engine.fit(task, hooks(frequency=2), epochs=5)
    assert params(tmp_path) == ["m-0002.params", "m-0004.params"]


def test_without_validation_the_last_epoch_is_kept(tmp_path):
    engine.fit(ToyTask(tmp_path, None), hooks(), epochs=3)
    assert params(tmp_path) == ["m-0003.params"]


def test_early_stopping_after_patience(tmp_path):
    task = ToyTask(tmp_path, [0.5, 0.6, 0.6, 0.61, 0.62, 0.9, 0.9])
    # min 2 epochs, patience 2, improvements below 5% relative do not count
    state = engine.fit(task, hooks(early=(2, 2, 0.05)), epochs=7)
    assert state.epoch == 3 and "Early stopping at epoch 3" in state.stop_reason
    assert params(tmp_path) == ["m-0004.params"]  # 0.61 was still the best score seen


def test_early_stopping_respects_min_epochs(tmp_path):
    state = engine.fit(ToyTask(tmp_path, [0.5] * 6), hooks(early=(5, 1, 0.0)), epochs=6)
    assert state.epoch == 4


def test_stop_request_ends_after_the_batch_and_saves(tmp_path):
    stop = threading.Event()
    task = ToyTask(tmp_path, [0.2, 0.3, 0.4], steps=3, stop_after=5, stop_event=stop)
    state = engine.fit(task, hooks(frequency=3), epochs=3, stop=stop)
    assert state.interrupted and task.trained == 5
    # Nothing was due yet with checkpoint_frequency=3: the current model is written anyway.
    assert params(tmp_path) == ["m-0002.params"]


def test_an_exception_does_not_write_a_model(tmp_path):
    class Broken(ToyTask):
        def train_step(self, batch):
            raise RuntimeError("boom")

    try:
        engine.fit(Broken(tmp_path, [0.1]), hooks(), epochs=2)
    except RuntimeError:
        pass
    assert params(tmp_path) == []


def test_state_and_hook_state_resume_where_an_interrupted_run_ended(tmp_path):
    """Two epochs, then a fresh loop resumed from the saved state: the same best model, early
    stopping counters and epoch numbers as one uninterrupted run."""
    scores = [0.5, 0.6, 0.6, 0.61, 0.62, 0.9]
    whole_dir, split_dir = tmp_path / "whole", tmp_path / "split"
    whole_dir.mkdir()
    split_dir.mkdir()
    whole = engine.fit(ToyTask(whole_dir, scores), hooks(early=(2, 2, 0.05)), epochs=6)

    first_hooks = hooks(early=(2, 2, 0.05))
    first = engine.fit(ToyTask(split_dir, scores[:2]), first_hooks, epochs=2)
    saved = {"state": first.state_dict(), "hooks": [h.state_dict() for h in first_hooks]}
    assert saved["state"]["epoch"] == 1 and saved["hooks"][4] == {"best": 0.6, "stale": 0}

    second_hooks = hooks(early=(2, 2, 0.05))
    for hook, state in zip(second_hooks, saved["hooks"]):
        hook.load_state_dict(state)
    task = ToyTask(split_dir, scores[2:])
    second = engine.fit(task, second_hooks, epochs=6, resume=saved["state"])
    assert task.trained == 2 * 3  # epochs 2 and 3 only
    assert (second.epoch, second.best_score, second.best_epoch) == (
        whole.epoch,
        whole.best_score,
        whole.best_epoch,
    )
    assert second.stop_reason == whole.stop_reason
    assert params(split_dir) == params(whole_dir) == ["m-0004.params"]


def test_a_stop_before_the_first_epoch_ends_writes_no_model(tmp_path, caplog):
    logger = logging.getLogger("sagemaker_cv")  # does not propagate once the CLI set it up
    logger.addHandler(caplog.handler)
    caplog.set_level(logging.INFO, logger="sagemaker_cv")
    stop = threading.Event()
    task = ToyTask(tmp_path, [0.2, 0.3], steps=3, stop_after=2, stop_event=stop)
    try:
        state = engine.fit(task, hooks(), epochs=2, stop=stop)
    finally:
        logger.removeHandler(caplog.handler)
    assert state.interrupted and task.trained == 2
    assert params(tmp_path) == []  # an untrained network is not presented as the model
    assert "before the first epoch finished: no model was written" in caplog.text


def test_a_stop_during_validation_ends_at_once_and_keeps_the_trained_epoch(tmp_path):
    class SlowValidation(ToyTask):
        def evaluate(self):
            raise TrainingInterrupted("SIGTERM")  # what the signal handler raises

    state = engine.fit(SlowValidation(tmp_path, [0.5]), hooks(), epochs=3)
    assert state.interrupted and state.epoch == 0
    assert params(tmp_path) == ["m-0001.params"]  # the epoch's training finished: it is kept


def test_the_signal_handler_raises_while_preparing_and_defers_inside_a_batch_or_a_write():
    with engine.StopOnSignal() as stop:
        with stop.deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)  # the handler runs here, between bytecodes
            assert stop.is_set()
        # Outside a deferred block (preparing data, building, validating) it raises at once.
        with pytest.raises(TrainingInterrupted):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_a_write_interrupted_by_a_stop_still_completes(tmp_path):
    saves = []

    class Signalled(ToyTask):
        def save(self, epoch_number):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
            saves.append(epoch_number)
            return super().save(epoch_number)

    with engine.StopOnSignal() as stop:
        state = engine.fit(Signalled(tmp_path, [0.5, 0.6]), hooks(stop=stop), epochs=2, stop=stop)
    assert state.interrupted and state.epoch == 0
    assert saves == [1] and params(tmp_path) == ["m-0001.params"]


def test_a_stop_between_the_last_batch_and_validation_skips_validation_and_keeps_the_epoch(tmp_path):
    stop = engine.StopRequest()

    class StoppedAtTheEnd(ToyTask):
        def batches(self, epoch):
            yield from super().batches(epoch)
            stop.set()  # after the loop's last check, before the epoch's hooks

        def evaluate(self):
            raise AssertionError("validation ran after a stop")

    state = engine.fit(StoppedAtTheEnd(tmp_path, [0.5]), hooks(stop=stop), epochs=3, stop=stop)
    assert state.interrupted and state.epoch == 0
    assert params(tmp_path) == ["m-0001.params"]
