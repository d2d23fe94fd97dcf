"""Segmentation networks in process on tiny data: every algorithm x backbone trains a step and
writes artifacts that GluonCV's own network loads; whole images of odd sizes; SyncBatchNorm across
two CPU contexts; ImageNet backbone files; the float16 export path."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import mxnet as mx
import numpy as np
import pytest

from sagemaker_cv import algorithms
from sagemaker_cv.algorithms.segmentation.network import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    gluoncv_class,
    segmentation_network,
)
from sagemaker_cv.algorithms.segmentation.task import SegmentationTask
from sagemaker_cv.contract.errors import ClientError
from sagemaker_cv.contract.paths import MLPaths
from sagemaker_cv.tools.segmentation_demo import write_segmentation_tree
from sagemaker_cv.training.devices import plan_devices
from sagemaker_cv.training.export import structural_params
from sagemaker_cv.training.job import load_job

CROP = 24


def make_task(root: Path, devices: int = 1, num_gpus: int = 0, **hp) -> SegmentationTask:
    hyperparameters = {"crop_size": CROP, "base_size": 32, "mini_batch_size": 2, "epochs": 1, **hp}
    train = int(hyperparameters["mini_batch_size"])
    write_segmentation_tree(root, train=train, validation=2, sizes=(29, 37), hyperparameters=hyperparameters)
    job = load_job(MLPaths(root), algorithms.get("semantic-segmentation"), num_gpus=num_gpus)
    task = SegmentationTask(job, plan_devices(0, cpu_devices=devices), root / "scratch")
    task.setup(task.check_data())
    return task


def gluoncv_network(algorithm: str, backbone: str, classes: int, crop: int):
    """What a downstream user builds to load model_algo-1 (the `{algorithm}_{backbone}_voc` structure)."""
    with contextlib.redirect_stdout(io.StringIO()):
        return gluoncv_class(algorithm)(
            classes, backbone=backbone.replace("-", ""), aux=True, pretrained_base=False, crop_size=crop
        )


def normalized(x: mx.nd.NDArray) -> mx.nd.NDArray:
    mean = mx.nd.array(IMAGENET_MEAN).reshape((1, 3, 1, 1))
    std = mx.nd.array(IMAGENET_STD).reshape((1, 3, 1, 1))
    return (x - mean) / std


@pytest.mark.slow
@pytest.mark.parametrize("backbone", ["resnet-50", "resnet-101"])
@pytest.mark.parametrize("algorithm", ["fcn", "psp", "deeplab"])
def test_trains_a_step_and_gluoncv_loads_model_algo_1(tmp_path, algorithm, backbone):
    task = make_task(tmp_path, algorithm=algorithm, backbone=backbone)
    before = next(iter(task.net.model.head.collect_params().values())).data().copy()
    assert task.train_step(next(task.batches(0))) == 2
    ((_, loss),) = task.train_metrics()
    assert np.isfinite(loss) and loss > 0
    head = next(iter(task.net.model.head.collect_params().values())).data()
    assert not np.array_equal(before.asnumpy(), head.asnumpy())  # the step changed the weights
    metrics = dict(task.validation_scores())
    assert 0 <= metrics["mIOU"] <= 1 and 0 <= metrics["pixel_accuracy"] <= 1

    files = task.save(1)
    assert [f.name for f in files] == [
        "model_algo-1",
        "hyperparams.json",
        "model_algo-1-symbol.json",
        "model_algo-1-0000.params",
    ]
    hp = json.loads(files[1].read_text())
    assert hp["algorithm"] == algorithm and hp["backbone"] == backbone and hp["num_classes"] == "3"
    assert all(isinstance(v, str) for v in hp.values())

    # model_algo-1 loads, as the built-in's does, into GluonCV's network of that structure, and
    # gives the trained network's outputs (main and auxiliary) on normalised input.
    x = mx.nd.random.uniform(0, 255, (1, 3, CROP, CROP))
    reference = gluoncv_network(algorithm, backbone, 3, CROP)
    reference.load_parameters(str(files[0]))
    trained = task.net(x)
    loaded = reference(normalized(x))
    for a, b in zip(trained, loaded):
        assert np.allclose(a.asnumpy(), b.asnumpy(), rtol=1e-4, atol=1e-4)

    # The inference graph takes raw pixels of any size; at crop_size it is the training network.
    graph = mx.gluon.SymbolBlock.imports(str(files[2]), ["data"], str(files[3]))
    assert np.allclose(graph(x).asnumpy(), mx.nd.softmax(trained[0], axis=1).asnumpy(), atol=1e-5)
    odd = mx.nd.random.uniform(0, 255, (1, 3, 37, 53))
    probabilities = graph(odd)
    assert probabilities.shape == (1, 3, 37, 53)
    assert np.allclose(probabilities.sum(axis=1).asnumpy(), 1, atol=1e-5)
    assert np.allclose(probabilities.asnumpy(), task.whole(odd).asnumpy(), atol=1e-5)
    task.close()


def test_whole_image_validation_scores_images_at_their_own_sizes(tmp_path):
    task = make_task(tmp_path, validation_mini_batch_size=1)
    seen = []
    original = task.whole.forward
    task.whole.forward = lambda x: seen.append(x.shape) or original(x)
    metrics = dict(task.validation_scores())
    sizes = [s[2:] for s in seen]
    # The demo's validation images have random odd and even sizes in [29, 37]: one forward each, unresized.
    expected = [cv2.imread(str(image)).shape[:2] for image, _ in task.val_loader._dataset.split.samples]
    assert sizes == expected and len(set(sizes)) > 1
    assert set(metrics) == {"pixel_accuracy", "mIOU", "throughput"}
    crops = make_task(tmp_path / "crops", validation_mini_batch_size=2)
    seen.clear()
    original = crops.whole.forward
    crops.whole.forward = lambda x: seen.append(x.shape) or original(x)
    crops.validation_scores()
    assert seen == [(2, 3, CROP, CROP)]


def _first_bn_running_means(task) -> list[np.ndarray]:
    bn = task.net.model.conv1[1]
    return [bn.running_mean.data(c).asnumpy() for c in task.ctx]


def test_syncbn_shares_batch_statistics_across_two_cpu_contexts(tmp_path):
    # The device threads GPUs train with, driven on CPU contexts for one step, which a job refuses
    # (limits.py: they can deadlock). A fresh interpreter with more of MXNet's CPU temporary-memory
    # slots than a step uses (MXNet reads MXNET_CPU_TEMP_COPY once per process), and nothing left
    # pending on device 0's engine thread when SyncBatchNorm blocks it.
    here = Path(__file__).parent
    code = f"import sys; sys.path.insert(0, {str(here)!r}); import {Path(__file__).stem} as t; t.syncbn_statistics(t.Path({str(tmp_path)!r}))"
    env = {**os.environ, "MXNET_CPU_TEMP_COPY": "1024"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert proc.stdout.strip().endswith("statistics shared")


def syncbn_statistics(tmp_path: Path) -> None:
    batch = (
        np.random.default_rng(0).integers(0, 255, (4, CROP, CROP, 3), dtype=np.uint8),
        np.random.default_rng(1).integers(0, 3, (4, CROP, CROP), dtype=np.uint8),
    )
    tasks = {
        name: make_task(tmp_path / name, devices=devices, syncbn=syncbn, mini_batch_size=4)
        for name, devices, syncbn in (("one", 1, False), ("sync", 2, True), ("local", 2, False))
    }
    initial = {k: p.data().copy() for k, p in structural_params(tasks["one"].net).items()}
    runs = {}
    for name, task in tasks.items():
        for key, param in structural_params(task.net).items():
            param.set_data(initial[key])  # every run starts from the same weights
        # Forward and backward only: the Trainer's first step copies device 0's running statistics
        # to the other devices when it initialises its kvstore, which would hide the difference.
        parts = task.device_parts(batch)
        mx.nd.waitall()
        task.forward_backward(parts)
        mx.nd.waitall()  # a read of running statistics does not wait for a static graph's write
        runs[name] = (_first_bn_running_means(task), task)
    one = runs["one"][0][0]
    synced = runs["sync"][0]
    local = runs["local"][0]
    # SyncBatchNorm: both devices saw the statistics of all four samples, as one device does.
    assert np.allclose(synced[0], synced[1], atol=1e-5) and np.allclose(synced[0], one, atol=1e-4)
    # Plain BatchNorm on two devices: each saw its own two samples.
    assert not np.allclose(local[0], local[1], atol=1e-3)
    assert "SyncBatchNorm" in type(runs["sync"][1].net.model.conv1[1]).__name__
    print("statistics shared")


def test_imagenet_backbone_from_a_local_file(tmp_path, monkeypatch):
    from gluoncv.model_zoo.resnetv1b import resnet50_v1s

    home = tmp_path / "mxnet"
    (home / "models").mkdir(parents=True)
    monkeypatch.setenv("MXNET_HOME", str(home))
    with pytest.raises(ClientError) as info:
        segmentation_network("fcn", "resnet-50", 3, CROP, True, [mx.cpu()])
    assert f"no pretrained weights resnet50_v1s-*.params in {home / 'models'}" in str(info.value)
    # What `sagemaker-cv weights import` writes: GluonCV's resnet50_v1s parameters.
    imagenet = resnet50_v1s(pretrained=False)
    imagenet.initialize(mx.init.Uniform(0.5))
    imagenet(mx.nd.zeros((1, 3, 32, 32)))
    imagenet.save_parameters(str(home / "models" / "resnet50_v1s-25a187fa.params"))
    net = segmentation_network("psp", "resnet-50", 3, CROP, True, [mx.cpu()])
    loaded, source = structural_params(net.model), structural_params(imagenet)
    for key in ("conv1.0.weight", "bn1.running_var", "layer4.2.conv3.weight"):
        assert np.array_equal(loaded[key].data().asnumpy(), source[key].data().asnumpy()), key
    assert "head.block.0.weight" in loaded and "fc.weight" not in loaded
    # A file of another network is named, not loaded.
    (home / "models" / "resnet50_v1s-25a187fa.params").unlink()
    mx.nd.save(str(home / "models" / "resnet50_v1s-0000.params"), {"conv1.0.weight": mx.nd.zeros((1,))})
    with pytest.raises(ClientError, match=r"do not fit resnet50_v1s \(missing conv1.1.gamma"):
        segmentation_network("fcn", "resnet-50", 3, CROP, True, [mx.cpu()])


def test_float16_training_exports_float32(tmp_path):
    # Validation accepts float16 only with a GPU: pretend one, then build on CPU contexts (no
    # float16 convolution runs here: the export copies the weights into the float32 twin).
    task = make_task(tmp_path, num_gpus=1, precision_dtype="float16")
    assert task.trainer._optimizer.multi_precision is True
    files = task.save(1)
    saved = mx.nd.load(str(files[0]))
    assert {v.dtype for v in saved.values()} == {np.float32}
    exported = mx.nd.load(str(files[3]))
    assert {v.dtype for v in exported.values()} == {np.float32}
    trained = structural_params(task.net.model)
    for key in ("conv1.0.weight", "head.block.4.weight"):
        assert np.array_equal(saved[key].asnumpy(), trained[key].data().astype("float32").asnumpy())
