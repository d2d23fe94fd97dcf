"""Incremental training through the real command line: a second job starts from the model.tar.gz
of a first one (the session's reference job), given in the `model` channel, and refuses one whose
network differs.

Tier: fast (one epoch of a second job on the shared reference job; the refusal ends in validate)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import mxnet as mx
import numpy as np
import pytest
from ml_tree import in_process, set_hyperparameters, train

pytestmark = pytest.mark.fast


@pytest.fixture
def first(trained) -> tuple[Path, Path]:
    """A first job's tree and its model.tar.gz."""
    job = trained("image-classification")
    return job.root, job.archive


def with_model_channel(first_root: Path, archive: Path, target: Path) -> Path:
    """A second job on the first one's data, without its model, output or checkpoints."""
    shutil.copytree(
        first_root,
        target,
        ignore=shutil.ignore_patterns("model", "output", "checkpoints", "checkpointconfig.json"),
    )
    (target / "input" / "data" / "model").mkdir()
    shutil.copy(archive, target / "input" / "data" / "model" / "model.tar.gz")
    config = target / "input" / "config" / "inputdataconfig.json"
    channels = json.loads(config.read_text())
    channels["model"] = {
        "ContentType": "application/x-sagemaker-model",
        "TrainingInputMode": "File",
        "S3DistributionType": "FullyReplicated",
    }
    config.write_text(json.dumps(channels))
    return target


def test_a_second_job_starts_from_the_first_jobs_model(first, tmp_path):
    first_root, archive = first
    root = with_model_channel(first_root, archive, tmp_path / "second")
    set_hyperparameters(root, learning_rate=0, epochs=1)  # nothing learned: the weights stay the first job's
    run = train(root)
    assert run.code == 0, run.out[-3000:]
    for line in (
        "Start training from the model in the model channel.",
        "Found a model archive file. Extracting model.tar.gz",
        "Using model weights from file ",
        "done loading checkpoint",
    ):
        assert line in run.out, line
    assert "Performing random weight initialization" not in run.out
    before = mx.nd.load(str(next((first_root / "model").glob("*.params"))))
    after = mx.nd.load(str(next((root / "model").glob("*.params"))))
    trained = sorted(k for k in before if k.startswith("arg:"))
    assert trained and trained == sorted(k for k in after if k.startswith("arg:"))
    for key in trained:
        assert np.array_equal(before[key].asnumpy(), after[key].asnumpy()), key


def test_a_model_of_another_network_is_refused_naming_each_mismatch(first, tmp_path):
    first_root, archive = first
    root = with_model_channel(first_root, archive, tmp_path / "other")
    set_hyperparameters(root, num_classes=4, num_layers=32, image_shape="3,18,18")
    run = in_process(root)
    assert run.code == 2, run.out[-3000:]
    assert run.failure.splitlines() == [
        "ClientError: channel 'model': the earlier model's network differs from this job's; these hyperparameters must be the same",
        "num_classes: the model in the model channel has 3, this job has 4",
        "num_layers: the model in the model channel has 20, this job has 32",
        "image_shape: the model in the model channel has 3,24,24, this job has 3,18,18",
    ]
