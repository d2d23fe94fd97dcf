"""Tier: fast. The learning record (metrics.jsonl, training-curves.png, TensorBoard events) on a
toy task whose log lines go through the package's logger, as an algorithm's do."""

from __future__ import annotations

import json
import logging
import re

import pytest

from sagemaker_cv.contract import logs
from sagemaker_cv.contract.errors import ClientError
from sagemaker_cv.contract.paths import MLPaths, TensorBoardSettings
from sagemaker_cv.training import curves, engine
from sagemaker_cv.training import hooks as h
from sagemaker_cv.training.progress import LearningRecord, Outputs, epoch_record
from sagemaker_cv.training.task import LogLines, Prepared, Task

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")

toy_log = logs.get("toy")
DEFINITIONS = (
    ("train:accuracy", r"Epoch\[\d+\] Batch \[\d+\] accuracy=([0-9.]+)"),
    ("train:loss:epoch", r"Epoch\[\d+\] Train-loss=([0-9.]+)"),
    ("validation:accuracy", r"Epoch\[\d+\] Validation-accuracy=([0-9.]+)"),
    ("train:progress", r"completed ([0-9.]+) % of epochs"),
)


class ToyLines(LogLines):
    def batch(self, epoch, batch, speed, metrics):
        toy_log.info("Epoch[%d] Batch [%d] accuracy=%f", epoch, batch, dict(metrics)["accuracy"])

    def train_epoch(self, epoch, metrics, seconds, samples):
        toy_log.info("Epoch[%d] Train-loss=%f", epoch, dict(metrics)["loss"])

    def validation(self, epoch, metrics):
        toy_log.info("Epoch[%d] Validation-accuracy=%f", epoch, dict(metrics)["accuracy"])

    def new_best(self, epoch, name, score):
        pass

    def saved(self, path):
        pass

    def epoch_end(self, epoch, epochs):
        toy_log.info("completed %s %% of epochs", 100.0 * (epoch + 1) / epochs)


class ToyTask(Task):
    score_name = "accuracy"
    log_interval = 2

    def __init__(self):
        self.log = ToyLines()
        self.batch_values = iter([0.25, 0.5, 0.75, 1.0] * 10)
        self.epoch = 0

    def check_data(self):
        return Prepared({})

    def setup(self, prepared):
        pass

    def batches(self, epoch):
        self.epoch = epoch
        return iter(range(4))

    def train_step(self, batch):
        return 8

    def running_metrics(self):
        return [("accuracy", next(self.batch_values))]

    def train_metrics(self):
        return [("loss", 2.0 / (self.epoch + 1))]

    def evaluate(self):
        return [("accuracy", 0.1 * (self.epoch + 1))]

    def save(self, epoch_number):
        return []


@pytest.fixture
def info_logging():
    logger = logs.get()
    level = logger.level
    logger.setLevel(logging.INFO)
    yield
    logger.setLevel(level)


def outputs(tmp_path) -> Outputs:
    return Outputs.for_job(MLPaths(tmp_path), DEFINITIONS, environ={})


def train(out: Outputs, epochs: int, resume=None, hook_state=None, primary=True) -> list:
    task = ToyTask()
    hooks = h.standard_hooks(task, {}, primary=primary, outputs=out)
    if hook_state is not None:
        next(x for x in hooks if isinstance(x, LearningRecord)).load_state_dict(hook_state)
    engine.fit(task, hooks, epochs, resume=resume)
    return hooks


def lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def scalars(directory) -> dict:
    accumulator = event_accumulator.EventAccumulator(str(directory))
    accumulator.Reload()
    return {t: [(e.step, e.value) for e in accumulator.Scalars(t)] for t in accumulator.Tags()["scalars"]}


def test_the_metrics_file_holds_what_the_definitions_read_from_the_log(tmp_path, info_logging, caplog):
    out = outputs(tmp_path)
    with caplog.at_level(logging.INFO, logger="sagemaker_cv"):
        train(out, 2)
    # Independently: the published regexes over the log text, epoch by epoch
    expected = []
    for epoch in range(2):
        record = {"epoch": epoch}
        for name, regex in DEFINITIONS:
            found = [
                float(m.group(1))
                for r in caplog.records
                if (m := re.search(regex, r.getMessage()))
                and f"Epoch[{epoch}]" in r.getMessage()
                or (m and name == "train:progress" and f"{50.0 * (epoch + 1)} %" in r.getMessage())
            ]
            if found:
                record[name] = sum(found) / len(found)
        expected.append(record)
    assert lines(out.metrics_file) == expected
    assert (
        expected[1]
        == {
            "epoch": 1,
            "train:accuracy": 0.375,  # (0.25 + 0.5) / 2: batches 2 and 4 (each epoch starts by resetting the running values)
            "train:loss:epoch": 1.0,
            "validation:accuracy": 0.2,
            "train:progress": 100.0,
        }
    )
    assert out.curves_file.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    events = scalars(out.tensorboard_dir)
    assert events["validation/accuracy"] == [(4, pytest.approx(0.1)), (8, pytest.approx(0.2))]
    assert events["train/loss/epoch"] == [(4, 2.0), (8, 1.0)]
    assert events["step/accuracy"] == [(2, 0.5), (4, 0.75), (6, 0.25), (8, 0.5)]
    assert [step for step, _ in events["epoch/images_per_sec"]] == [4, 8]
    assert events["epoch/epoch"] == [(4, 0.0), (8, 1.0)]


def test_a_resumed_job_continues_the_files_without_repeating_an_epoch(tmp_path, info_logging):
    out = outputs(tmp_path)
    first = train(out, 3)  # epochs 0-2 logged; the checkpoint (below) was taken after epoch 0
    record = next(x for x in first if isinstance(x, LearningRecord))
    checkpoint = {"records": record.state_dict()["records"][:1]}
    train(
        out,
        3,
        resume={
            "epoch": 0,
            "step": 4,
            "epoch_seconds": [1.0],
            "best_score": 0.1,
            "best_epoch": 1,
            "saved_epoch": 1,
        },
        hook_state=checkpoint,
    )
    assert [r["epoch"] for r in lines(out.metrics_file)] == [0, 1, 2]
    events = scalars(out.tensorboard_dir)
    assert [step for step, _ in events["validation/accuracy"]] == [4, 8, 12]
    assert [step for step, _ in events["step/accuracy"]] == [2, 4, 6, 8, 10, 12]


def test_a_new_container_rewrites_the_files_from_the_checkpoint(tmp_path, info_logging):
    out = outputs(tmp_path)
    history = {
        "records": [{"epoch": 0, "validation:accuracy": 0.5}, {"epoch": 1, "validation:accuracy": 0.6}]
    }
    resume = {
        "epoch": 1,
        "step": 8,
        "epoch_seconds": [1.0, 1.0],
        "best_score": 0.6,
        "best_epoch": 2,
        "saved_epoch": 2,
    }
    train(out, 3, resume=resume, hook_state=history)
    assert [r["epoch"] for r in lines(out.metrics_file)] == [0, 1, 2]
    assert lines(out.metrics_file)[:2] == history["records"]


def test_a_fresh_job_starts_the_metrics_file_anew(tmp_path, info_logging):
    out = outputs(tmp_path)
    train(out, 2)
    train(out, 1)
    assert [r["epoch"] for r in lines(out.metrics_file)] == [0]


def test_a_failure_to_write_is_a_warning_and_training_goes_on(tmp_path, info_logging, caplog):
    blocker = tmp_path / "output"
    blocker.write_text("a file where the output directory should be")
    out = outputs(tmp_path)
    with caplog.at_level(logging.INFO, logger="sagemaker_cv"):
        state = engine.fit(ToyTask(), h.standard_hooks(ToyTask(), {}, primary=True, outputs=out), 3)
    assert state.epoch == 2 and not state.failed
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert sorted(w.split(" (")[0] for w in warnings) == [
        "Could not write the TensorBoard",
        "Could not write the curves",
        "Could not write the metrics file",
    ]  # once each, not once per epoch


def test_only_the_primary_host_writes(tmp_path):
    out = outputs(tmp_path)
    assert isinstance(h.standard_hooks(ToyTask(), {}, primary=True, outputs=out)[-1], LearningRecord)
    assert not any(
        isinstance(x, LearningRecord) for x in h.standard_hooks(ToyTask(), {}, primary=False, outputs=out)
    )


def test_several_readings_in_an_epoch_are_averaged_in_the_definitions_order():
    readings = {"validation:mIOU": [0.5], "train:throughput": [10.0, 20.0, 60.0]}
    record = epoch_record(3, readings, ["train:throughput", "train:loss", "validation:mIOU"])
    assert list(record.items()) == [("epoch", 3), ("train:throughput", 30.0), ("validation:mIOU", 0.5)]


def test_the_curves_pair_training_and_validation_and_prefer_whole_epoch_values():
    from sagemaker_cv.algorithms import REGISTRY

    names = [n for n, _ in REGISTRY["image-classification"].metric_definitions]
    assert curves.panels(names) == {
        "accuracy": {"train": "train:accuracy:epoch", "validation": "validation:accuracy:epoch"},
        "top_k_accuracy": {
            "train": "train:top_k_accuracy:epoch",
            "validation": "validation:top_k_accuracy:epoch",
        },
        "loss": {"train": "train:loss:epoch"},
    }
    names = [n for n, _ in REGISTRY["object-detection"].metric_definitions]
    assert curves.panels(names) == {
        "cross_entropy": {"train": "train:cross_entropy"},
        "smooth_l1": {"train": "train:smooth_l1"},
        "mAP": {"validation": "validation:mAP"},
    }


def test_the_tensorboard_directory_comes_from_the_environment(tmp_path):
    paths = MLPaths(tmp_path)
    assert TensorBoardSettings.from_env(paths, {}).directory == tmp_path / "output" / "tensorboard"
    assert (
        TensorBoardSettings.from_env(paths, {"SAGEMAKER_CV_TENSORBOARD_DIR": "/data/tb"}).directory.as_posix()
        == "/data/tb"
    )
    # a SageMaker path moves under a local root, as every /opt/ml path does
    moved = TensorBoardSettings.from_env(paths, {"SAGEMAKER_CV_TENSORBOARD_DIR": "/opt/ml/output/tb2"})
    assert moved.directory == tmp_path / "output" / "tb2"
    for bad in ("", "  ", "relative/dir"):
        with pytest.raises(
            ClientError, match="SAGEMAKER_CV_TENSORBOARD_DIR=.*expected an absolute directory path"
        ):
            TensorBoardSettings.from_env(paths, {"SAGEMAKER_CV_TENSORBOARD_DIR": bad})
