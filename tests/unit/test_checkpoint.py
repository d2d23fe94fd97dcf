"""Checkpoints on disk with the toy task of test_engine: written then renamed, the newest two
kept, damaged ones skipped by name, and a run resumed from one ends as an uninterrupted run."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from test_engine import ToyTask, hooks, params

from sagemaker_cv import algorithms
from sagemaker_cv.contract.config import ResourceConfig, parse_checkpoint_config
from sagemaker_cv.contract.errors import ClientError
from sagemaker_cv.contract.paths import MLPaths
from sagemaker_cv.schema import HyperParameters
from sagemaker_cv.training import checkpoint as ck
from sagemaker_cv.training import engine
from sagemaker_cv.training.job import Job


class StatefulToy(ToyTask):
    """A toy whose "weights" are the batches trained so far, saved like GluonTask.save_state."""

    def save_state(self, directory: Path):
        (directory / "weights.params").write_text(json.dumps({"trained": self.trained}))
        (directory / "optimizer.states").write_text("states")

    def load_state(self, directory: Path, updates: int, optimizer: bool = True):
        self.trained = json.loads((directory / "weights.params").read_text())["trained"]
        self.loaded = (updates, optimizer)


def job(root: Path, **hp) -> Job:
    values = {"epochs": 6, "learning_rate": 0.1, "num_layers": 18, **hp}
    return Job(
        algorithms.get("image-classification"),
        MLPaths(root),
        HyperParameters(values),
        ResourceConfig(),
        {},
        seed=11,
    )


def fill_with(text):
    def fill(directory):
        (directory / "weights.params").write_text(text)

    return fill


def test_config_file():
    assert parse_checkpoint_config(None) is None
    assert parse_checkpoint_config({}).local_path == "/opt/ml/checkpoints"
    assert parse_checkpoint_config({"LocalPath": "/data/ck", "S3Uri": "s3://b/k"}).local_path == "/data/ck"
    with pytest.raises(ClientError, match="LocalPath='ck': expected an absolute path"):
        parse_checkpoint_config({"LocalPath": "ck"})
    assert MLPaths(Path("/tmp/t")).under_root("/opt/ml/checkpoints") == Path("/tmp/t/checkpoints")
    assert MLPaths().under_root("/opt/ml/checkpoints") == Path("/opt/ml/checkpoints")
    assert MLPaths(Path("/tmp/t")).under_root("/data/ck") == Path("/data/ck")


def test_newest_two_kept_and_temporaries_removed(tmp_path):
    store = ck.CheckpointStore(tmp_path)
    (tmp_path / ".tmp-checkpoint-0009-1").mkdir()  # left by a writer that was killed
    for n in (1, 2, 3):
        store.write(n, {"format": ck.FORMAT, "n": n}, fill_with(f"w{n}"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-0002", "checkpoint-0003"]
    latest = store.latest()
    assert latest.number == 3 and latest.state["n"] == 3
    assert (latest.path / "weights.params").read_text() == "w3"


@pytest.mark.parametrize(
    "damage, reason",
    [
        (lambda p: (p / "weights.params").write_text("w"), "weights.params has 1 bytes, expected 2"),
        (lambda p: (p / "weights.params").write_text("xx"), "weights.params does not match its SHA-256"),
        (lambda p: (p / "state.json").unlink(), "state.json is missing"),
        (lambda p: (p / "MANIFEST.json").write_text('{"files": '), "MANIFEST.json unreadable"),
    ],
)
def test_a_damaged_newest_checkpoint_is_skipped_by_name(tmp_path, caplog, damage, reason):
    store = ck.CheckpointStore(tmp_path)
    store.write(1, {"format": ck.FORMAT}, fill_with("w1"))
    store.write(2, {"format": ck.FORMAT}, fill_with("w2"))
    damage(tmp_path / "checkpoint-0002")
    with caplog.at_level(logging.WARNING, logger="sagemaker_cv"):
        assert store.latest().number == 1
    assert f"Skipping checkpoint {tmp_path / 'checkpoint-0002'}: {reason}" in caplog.text
    # The next write keeps two valid ones: the damaged one goes.
    store.write(3, {"format": ck.FORMAT}, fill_with("w3"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-0001", "checkpoint-0003"]


def test_model_files_unchanged_since_the_previous_checkpoint_are_linked(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "a-0001.params").write_text("best")
    (model / "shapes.json").write_text("1")
    ck.copy_model_dir(model, tmp_path / "c1", None)
    (model / "shapes.json").write_text("2")
    ck.copy_model_dir(model, tmp_path / "c2", tmp_path / "c1")
    assert (tmp_path / "c2" / "a-0001.params").stat().st_ino == (
        tmp_path / "c1" / "a-0001.params"
    ).stat().st_ino
    assert (tmp_path / "c2" / "shapes.json").read_text() == "2"
    assert (tmp_path / "c1" / "shapes.json").read_text() == "1"

    (model / "a-0002.params").write_text("stale")  # written after the checkpoint, before a kill
    assert ck.restore_model_dir(tmp_path / "c1", model) == ["a-0001.params", "shapes.json"]
    assert sorted(p.name for p in model.iterdir()) == ["a-0001.params", "shapes.json"]


def run(root: Path, scores, epochs: int, stop_after_epochs: int | None = None):
    """The runner's sequence with a toy task: restore the newest checkpoint if any, train, write
    a checkpoint after each epoch. `stop_after_epochs` ends the process there (as a kill would)."""
    the_job = job(root, epochs=epochs)
    store = ck.CheckpointStore(root / "checkpoints")
    task = StatefulToy(the_job.paths.model_dir, scores)
    the_job.paths.model_dir.mkdir(parents=True, exist_ok=True)
    hook_list = hooks(early=(2, 2, 0.05))
    resume = None
    latest = store.latest()
    if latest is not None:
        resume = ck.restore(latest, task, hook_list, the_job, ("num_layers",))
        task.scores = task.scores[resume["epoch"] + 1 :]
    writer = ck.CheckpointWriter(store, the_job, hook_list)
    last = stop_after_epochs if stop_after_epochs is not None else epochs
    state = engine.fit(task, [*hook_list, writer], last, resume=resume)
    return task, state


def test_a_resumed_run_ends_as_an_uninterrupted_one(tmp_path):
    scores = [0.5, 0.6, 0.6, 0.61, 0.62, 0.9]
    whole_task, whole = run(tmp_path / "whole", scores, 6)
    run(tmp_path / "split", scores, 6, stop_after_epochs=2)
    task, state = run(tmp_path / "split", scores, 6)
    assert task.loaded == (6, True)  # 2 epochs of 3 batches: 6 updates, optimizer states restored
    assert (state.epoch, state.best_score, state.best_epoch, state.stop_reason) == (
        whole.epoch,
        whole.best_score,
        whole.best_epoch,
        whole.stop_reason,
    )
    assert task.trained == whole_task.trained
    assert params(tmp_path / "split" / "model") == params(tmp_path / "whole" / "model") == ["m-0004.params"]
    saved = json.loads((tmp_path / "split" / "checkpoints" / "checkpoint-0004" / "state.json").read_text())
    assert saved["finished"].startswith("Early stopping at epoch 3") and saved["seed"] == 11


def test_changed_hyperparameters(tmp_path, caplog):
    store = ck.CheckpointStore(tmp_path / "ck")
    run(tmp_path, [0.5, 0.6], 6, stop_after_epochs=1)
    latest = ck.CheckpointStore(tmp_path / "checkpoints").latest()
    task = StatefulToy(tmp_path / "model", [])
    # More epochs: the optimizer goes on as it was.
    ck.restore(latest, task, hooks(), job(tmp_path, epochs=9), ("num_layers",))
    assert task.loaded == (3, True)
    # Another learning rate: a fresh optimizer, with a warning that says why.
    with caplog.at_level(logging.WARNING, logger="sagemaker_cv"):
        ck.restore(latest, task, hooks(), job(tmp_path, learning_rate=0.01), ("num_layers",))
    assert task.loaded == (3, False)
    assert (
        "learning_rate was 0.1, now 0.01" in caplog.text
        and "Optimizer states are not restored" in caplog.text
    )
    # Another network: refused, both values named.
    with pytest.raises(ClientError) as err:
        ck.restore(latest, task, hooks(), job(tmp_path, num_layers=34), ("num_layers",))
    assert err.value.problems[1] == "num_layers: the checkpoint has 18, this job 34"
    assert store.latest() is None
