"""Object detection options on a few images and steps: both base networks, ImageNet weights from a
local file, freeze_layer_pattern by the built-in's layer names, early stopping, several devices, a
diverging loss, and the exported graph against the trained network."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import mxnet as mx
import numpy as np
import pytest
from ml_tree import set_hyperparameters, train

from sagemaker_cv import algorithms
from sagemaker_cv.tools.detection_demo import write_detection_tree

SMALL = {"mini_batch_size": "2", "epochs": "1", "optimizer": "sgd", "learning_rate": "0.0001"}


def base_weights(home: Path, name: str) -> dict[str, np.ndarray]:
    """A GluonCV params file for the base network (random values), as `weights import` writes it."""
    if name == "vgg16_atrous":
        from gluoncv.model_zoo.ssd.vgg_atrous import get_vgg_atrous_extractor

        net = get_vgg_atrous_extractor(16, 300)
    else:
        from gluoncv.model_zoo import get_model

        net = get_model(name, pretrained=False)
    net.initialize(mx.init.Uniform(0.1))
    net(mx.nd.zeros((1, 3, 300, 300)))
    (home / "models").mkdir(parents=True, exist_ok=True)
    net.save_parameters(str(home / "models" / f"{name}-0123abcd.params"))
    return {k: v.asnumpy() for k, v in mx.nd.load(str(home / "models" / f"{name}-0123abcd.params")).items()}


def saved(root: Path) -> dict[str, np.ndarray]:
    return {
        k.split(":", 1)[1]: v.asnumpy()
        for k, v in mx.nd.load(str(root / "model/model_algo_1-0000.params")).items()
    }


def test_vgg16_recordio_pretrained_frozen_blocks_early_stopping_on_two_devices(tmp_path):
    root = tmp_path / "ml"
    hp = {
        **SMALL,
        "base_network": "vgg-16",
        "use_pretrained_model": "1",
        "freeze_layer_pattern": "^(conv1_|conv2_).*",
        "epochs": "4",
        "early_stopping": "True",
        "early_stopping_min_epochs": "1",
        "early_stopping_patience": "1",
        "early_stopping_tolerance": "1.0",  # an improvement must double the mAP
    }
    write_detection_tree(root, content="recordio", train_images=2, val_images=2, hyperparameters=hp)
    file = base_weights(tmp_path / "home", "vgg16_atrous")
    run = train(
        root, "--algorithm", "object-detection", MXNET_HOME=tmp_path / "home", SAGEMAKER_CV_CPU_DEVICES=2
    )
    assert run.code == 0, run.out[-3000:]
    assert "Start training from pretrained model 1" in run.out
    assert (
        "Freezing 8 parameter(s) of layers conv1_1, conv1_2, conv2_1, conv2_2 (freeze_layer_pattern='^(conv1_|conv2_).*')"
        in run.out
    )
    assert "Using [cpu(0), cpu(1)] as training context" in run.out
    assert "Early stopping at epoch 1" in run.out or "Early stopping at epoch 2" in run.out, run.out[-2000:]
    assert 2 <= len(re.findall(r"validation mAP <score>", run.out)) < 4

    # Frozen: exactly the file's values. The next block trained (it started from the file too).
    model = saved(root)
    for i in range(4):
        ours, key = f"vgg16_conv{i}_weight", f"stages.{i // 2}.{2 * (i % 2)}.weight"
        assert np.array_equal(model[ours], file[key]), ours
    assert not np.array_equal(model["vgg16_conv4_weight"], file["stages.2.0.weight"])


def test_resnet50_from_a_local_file_and_a_missing_file(tmp_path):
    root = tmp_path / "ml"
    write_detection_tree(
        root,
        content="images",
        train_images=2,
        val_images=2,
        hyperparameters={
            **SMALL,
            "use_pretrained_model": "1",
            "freeze_layer_pattern": "^(conv0_|bn0_|stage1_|stage2_)",
        },
    )
    file = base_weights(tmp_path / "home", "resnet50_v1b")
    run = train(root, "--algorithm", "object-detection", MXNET_HOME=tmp_path / "home")
    assert run.code == 0, run.out[-3000:]
    # The built-in's ResNet-50 layer names: the stem and the first two stages.
    frozen = re.search(r"Freezing 72 parameter\(s\) of layers (.*) \(freeze_layer_pattern=", run.out)
    assert frozen and frozen.group(1).startswith("bn0, conv0, stage1_unit1_bn1, "), run.out[-3000:]
    assert "stage2_unit4_conv3" in frozen.group(1) and "stage3" not in frozen.group(1)
    model = saved(root)
    assert np.array_equal(model["resnetv1b_conv0_weight"], file["conv1.weight"])
    assert np.array_equal(model["resnetv1b_layers2_conv11_weight"], file["layer2.3.conv3.weight"])
    assert not np.array_equal(model["resnetv1b_layers3_conv0_weight"], file["layer3.0.conv1.weight"])

    shutil.rmtree(root / "model")
    (root / "model").mkdir()
    set_hyperparameters(root, freeze_layer_pattern="^nothing_by_this_name")
    missing = train(root, "--algorithm", "object-detection", MXNET_HOME=tmp_path / "empty")
    assert missing.code == 2
    assert (
        f"use_pretrained_model=1: no pretrained weights resnet50_v1b-*.params in {tmp_path / 'empty' / 'models'}"
        in missing.failure
    )


@pytest.mark.fast
def test_a_weights_file_of_another_network_is_named_not_loaded(tmp_path, monkeypatch):
    from sagemaker_cv.algorithms.detection.network import build_detector
    from sagemaker_cv.contract.errors import ClientError

    monkeypatch.setenv("MXNET_HOME", str(tmp_path))
    (tmp_path / "models").mkdir()
    mx.nd.save(str(tmp_path / "models" / "resnet50_v1b-0000.params"), {"conv1.weight": mx.nd.zeros((1,))})
    with pytest.raises(ClientError, match=r"do not fit resnet50_v1b \(missing bn1\.gamma"):
        build_detector("resnet-50", 2, 300, pretrained=True, ctx=[mx.cpu()])
    (tmp_path / "models" / "resnet50_v1b-0000.params").write_bytes(b"not a params file")
    with pytest.raises(ClientError, match=r"resnet50_v1b-0000\.params: not an MXNet parameter file"):
        build_detector("resnet-50", 2, 300, pretrained=True, ctx=[mx.cpu()])


def test_a_diverging_loss_stops_with_a_client_error(tmp_path):
    root = tmp_path / "ml"
    hp = {
        **SMALL,
        "base_network": "vgg-16",  # no BatchNorm to hold the activations back
        "learning_rate": "1",
        "momentum": "0.99",
        "epochs": "3",
        "freeze_layer_pattern": "^nothing$",
    }
    write_detection_tree(root, content="images", train_images=6, val_images=2, hyperparameters=hp)
    run = train(root, "--algorithm", "object-detection")
    assert run.code == 2, run.out[-3000:]
    assert "freeze_layer_pattern='^nothing$' matches no layer of the vgg-16 base network" in run.out
    assert re.match(
        r"ClientError: the training loss diverged \(NaN or infinite\) at epoch \d, batch \d; lower learning_rate "
        r"\(now 1\)",
        run.failure,
    ), run.failure


def test_the_exported_graph_detects_as_the_trained_network(tmp_path):
    from sagemaker_cv.algorithms.detection.task import DetectionTask
    from sagemaker_cv.contract.paths import MLPaths
    from sagemaker_cv.training.devices import plan_devices
    from sagemaker_cv.training.job import load_job

    root = tmp_path / "ml"
    write_detection_tree(root, content="images", train_images=2, val_images=2, hyperparameters=SMALL)
    task = DetectionTask(
        load_job(MLPaths(root), algorithms.get("object-detection"), num_gpus=0),
        plan_devices(0),
        tmp_path / "s",
    )
    task.setup(task.check_data())
    batch = next(task.batches(0))
    task.train_step(batch)
    files = task.save(1)
    assert sorted(p.name for p in files) == [
        "hyperparams.json",
        "model_algo_1-0000.params",
        "model_algo_1-symbol.json",
    ]
    exported = mx.gluon.SymbolBlock.imports(str(files[0]), ["data"], str(files[1]))
    x = batch.data[0]
    ours, theirs = task.export_block(x).asnumpy(), exported(x).asnumpy()
    assert ours.shape == (2, 100, 6)
    assert np.allclose(ours, theirs, atol=1e-5)
    task.close()


def test_a_diverged_batch_is_named_and_nothing_is_written_after_it(tmp_path):
    """The loss is read one batch late (so the next batch is prepared while a step runs): the
    error still names the batch that diverged, at the next batch, at the end of the epoch, or
    when a stopped job ends."""
    import threading

    from sagemaker_cv.algorithms.detection.task import DetectionTask
    from sagemaker_cv.contract.errors import ClientError
    from sagemaker_cv.contract.paths import MLPaths
    from sagemaker_cv.training import engine
    from sagemaker_cv.training import hooks as h
    from sagemaker_cv.training.devices import plan_devices
    from sagemaker_cv.training.job import load_job

    root = tmp_path / "ml"
    write_detection_tree(root, content="images", train_images=4, val_images=2, hyperparameters=SMALL)
    task = DetectionTask(
        load_job(MLPaths(root), algorithms.get("object-detection"), num_gpus=0),
        plan_devices(0),
        tmp_path / "s",
    )
    task.setup(task.check_data())
    for param in task.trainable_parameters().values():  # every loss from the first batch on is NaN
        param.set_data(param.data() * float("nan"))
    model_dir = root / "model"

    # Two batches per epoch: the first batch's loss is read while the second batch runs.
    with pytest.raises(ClientError, match=r"diverged \(NaN or infinite\) at epoch 0, batch 1;"):
        engine.fit(task, [h.ModelWriter(enabled=True)], epochs=1)
    # The epoch's last batch is read before the epoch's hooks validate or write.
    task.steps = 1
    with pytest.raises(ClientError, match=r"at epoch 0, batch 1;"):
        engine.fit(task, [h.ModelWriter(enabled=True)], epochs=1)
    # A stop request ends the epoch after its first batch: nothing is written, and the job still
    # fails with the divergence when the task is closed.
    task.steps = 2
    stop = threading.Event()
    stop.set()
    state = engine.fit(task, [h.ModelWriter(enabled=True)], epochs=1, stop=stop)
    assert state.interrupted
    with pytest.raises(ClientError, match=r"at epoch 0, batch 1;"):
        task.close()
    assert not list(model_dir.iterdir())
