"""Semantic segmentation from an earlier job's model (the `model` channel) through the real
command line: the weights carry over, and a model of another network is refused by name."""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import mxnet as mx
import numpy as np
import pytest
from ml_tree import in_process, set_hyperparameters, train

from sagemaker_cv.tools.segmentation_demo import write_segmentation_tree

SMALL = {"epochs": 1, "crop_size": 17, "base_size": 20, "mini_batch_size": 2}


def add_model_channel(root: Path, archive: Path) -> None:
    (root / "input/data/model").mkdir(parents=True, exist_ok=True)
    shutil.copy(archive, root / "input/data/model/model.tar.gz")
    config = root / "input/config/inputdataconfig.json"
    channels = json.loads(config.read_text())
    channels["model"] = {"ContentType": "application/x-sagemaker-model", "TrainingInputMode": "File"}
    config.write_text(json.dumps(channels))


def trained(path: Path) -> dict[str, np.ndarray]:
    """model_algo-1's trained parameters (BatchNorm's running statistics change in any training)."""
    return {k: v.asnumpy() for k, v in mx.nd.load(str(path)).items() if "running_" not in k}


def test_a_second_job_starts_from_the_first_jobs_model_algo_1(tmp_path):
    first = tmp_path / "first"
    write_segmentation_tree(first, train=2, validation=1, sizes=(17, 21), hyperparameters=SMALL)
    archive = tmp_path / "out" / "model.tar.gz"
    run = train(first, "--algorithm", "semantic-segmentation", "--model-archive", str(archive))
    assert run.code == 0, run.out[-3000:]

    second = tmp_path / "second"
    shutil.copytree(first, second, ignore=shutil.ignore_patterns("model", "output"))
    add_model_channel(second, archive)
    # learning_rate > 0 is the schema's rule: at 1e-9 the weights stay the first job's to 1e-6.
    set_hyperparameters(second, optimizer="sgd", learning_rate=1e-9)
    run = train(second, "--algorithm", "semantic-segmentation")
    assert run.code == 0, run.out[-3000:]
    for line in (
        "Start training from the model in the model channel.",
        "Found a model archive file. Extracting model.tar.gz",
        "Using model weights from file ",
        "done loading checkpoint",
    ):
        assert line in run.out, line
    assert "Performing random weight initialization" not in run.out
    before, after = trained(first / "model/model_algo-1"), trained(second / "model/model_algo-1")
    assert before.keys() == after.keys() and len(before) > 100
    for key, value in before.items():
        assert np.allclose(value, after[key], rtol=0, atol=1e-6), key


@pytest.mark.fast
def test_a_model_of_another_network_is_refused_naming_each_mismatch(tmp_path):
    # validate reads only hyperparams.json and checks that model_algo-1 is there: no training needed.
    model = tmp_path / "earlier"
    model.mkdir()
    (model / "model_algo-1").write_bytes(b"weights")
    hp = {"algorithm": "psp", "backbone": "resnet-101", "num_classes": "21", "crop_size": "240"}
    (model / "hyperparams.json").write_text(json.dumps(hp))
    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for f in model.iterdir():
            tar.add(f, arcname=f.name)
    root = tmp_path / "ml"
    write_segmentation_tree(root, train=2, validation=1, sizes=(17, 21), hyperparameters=SMALL)
    add_model_channel(root, archive)
    run = in_process(root, "--algorithm", "semantic-segmentation")
    assert run.code == 2, run.out[-3000:]
    assert run.failure.splitlines() == [
        "ClientError: channel 'model': the earlier model's network differs from this job's; these "
        "hyperparameters must be the same",
        "algorithm: the model in the model channel has 'psp', this job has 'fcn'",
        "backbone: the model in the model channel has 'resnet-101', this job has 'resnet-50'",
        "num_classes: the model in the model channel has 21, this job has 3",
        "crop_size: the model in the model channel has 240, this job has 17",
    ]

    (model / "model_algo-1").unlink()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(model / "hyperparams.json", arcname="hyperparams.json")
    add_model_channel(root, archive)
    run = in_process(root, "--algorithm", "semantic-segmentation")
    assert run.code == 2
    assert "channel 'model': the archive lacks model_algo-1 (it holds hyperparams.json)" in run.failure
