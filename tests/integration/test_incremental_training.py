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

from sagemaker_cv.algorithms.detection.classes import ClassMap
from sagemaker_cv.tools.detection_demo import write_detection_tree

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


def detection_with_model_channel(trained, target: Path, content: str, names: tuple[str, ...]) -> Path:
    """A new detection tree (`content`) whose model channel holds the reference job's model with a
    class_map.json naming its classes `names`."""
    job = trained("object-detection")
    write_detection_tree(
        target, content=content, train_images=4, val_images=2, hyperparameters=job.hyperparameters
    )
    model = target / "input" / "data" / "model"
    shutil.copytree(job.model_dir, model)
    (model / "class_map.json").write_text(ClassMap("coco", "x", names, (1, 3, 7)).text())
    config = target / "input" / "config" / "inputdataconfig.json"
    channels = json.loads(config.read_text())
    channels["model"] = {"ContentType": "application/x-sagemaker-model", "TrainingInputMode": "File"}
    config.write_text(json.dumps(channels))
    return target


def test_a_model_whose_classes_are_not_the_datas_is_refused(trained, tmp_path):
    """COCO data numbered otherwise than the model's classes: the model's class ids would be
    trained on as other classes."""
    root = detection_with_model_channel(trained, tmp_path / "ml", "coco", ("square", "disc", "triangle"))
    run = in_process(root, "--algorithm", "object-detection")
    assert run.code == 2, run.out[-3000:]
    assert run.failure == (
        "ClientError: channel 'model': its class_map.json has 0=square (category 1), 1=disc (category 3), "
        "2=triangle (category 7), but the COCO categories of train_annotation and validation_annotation define "
        "0=disc (category 1), 1=square (category 3), 2=triangle (category 7); class 0 is 'square' in the model "
        "and 'disc' in the data, so the model's class ids would be read as other classes; COCO's class ids "
        "follow ascending category id: number the categories in the model's order"
    )


def test_data_without_class_names_takes_the_models(trained, tmp_path):
    """RecordIO names no class: the model channel's class_map.json names them (and is written
    with the new model); COCO data of the model's classes fits."""
    names = ("disc", "square", "triangle")
    root = detection_with_model_channel(trained, tmp_path / "rec", "recordio", names)
    run = in_process(root, "--algorithm", "object-detection")
    assert run.code == 0, run.out[-3000:]
    assert "Class names from the class_map.json of channel 'model': 0=disc (category 1), 1=square" in run.out
    root = detection_with_model_channel(trained, tmp_path / "coco", "coco", names)
    run = in_process(root, "--algorithm", "object-detection")
    assert run.code == 0, run.out[-3000:]
