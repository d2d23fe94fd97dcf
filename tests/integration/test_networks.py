"""Every ResNet depth of both seed sets, and the float16 export path (no convolution runs in it,
so it is testable on CPU)."""

from __future__ import annotations

import json
from pathlib import Path

import mxnet as mx
import numpy as np
import pytest

from sagemaker_cv import algorithms
from sagemaker_cv.algorithms.classification.network import classification_network, resnet
from sagemaker_cv.algorithms.classification.schema import CIFAR_LAYERS, IMAGENET_LAYERS
from sagemaker_cv.contract.paths import MLPaths
from sagemaker_cv.training.devices import plan_devices
from sagemaker_cv.training.export import structural_params
from sagemaker_cv.training.job import load_job


@pytest.mark.fast
@pytest.mark.parametrize("layers", IMAGENET_LAYERS + CIFAR_LAYERS)
def test_every_depth_has_that_many_weighted_layers(layers):
    net = resnet(layers, classes=7)
    weighted = [
        key for key in net._collect_params_with_prefix() if key.endswith("weight") and "downsample" not in key
    ]
    assert len(weighted) == layers  # convolutions on the main path + the output layer


@pytest.mark.fast
@pytest.mark.parametrize("layers", [18, 20, 200])
def test_forward_on_raw_pixels(layers):
    net = classification_network(layers, classes=4, channels=1, pretrained=False, ctx=[mx.cpu()])
    out = net(mx.nd.random.uniform(0, 255, (2, 1, 32, 32)))
    assert out.shape == (2, 4) and np.isfinite(out.asnumpy()).all()


def test_float16_training_exports_float32(tree):
    from sagemaker_cv.algorithms.classification.task import ClassificationTask

    root = tree(per_class=4, val_per_class=2, hyperparameters={"precision_dtype": "float16", "epochs": "1"})
    # Validation accepts float16 only with a GPU: pretend one, then build everything on CPU contexts.
    job = load_job(MLPaths(root), algorithms.get("image-classification"), num_gpus=1)
    task = ClassificationTask(job, plan_devices(0), Path(root.parent / "scratch"))
    task.setup(task.check_data())
    params = task.net.collect_params()
    assert {np.dtype(p.dtype) for p in params.values()} == {
        np.dtype("float16"),
        np.dtype("float32"),
    }  # BN stays fp32
    assert task.trainer._optimizer.multi_precision is True
    files = task.save(3)
    assert [f.name for f in files] == [
        "image-classification-symbol.json",
        "image-classification-0003.params",
        "model-shapes.json",
    ]
    saved = mx.nd.load(str(files[1]))
    assert {v.dtype for v in saved.values()} == {np.float32}
    trained = {k: p.data().astype("float32").asnumpy() for k, p in structural_params(task.net).items()}
    exported = {k: p.data().asnumpy() for k, p in structural_params(task.export_block.net).items()}
    assert trained.keys() == exported.keys()
    assert all(np.array_equal(trained[k], exported[k]) for k in trained)
    assert '"__dtype__": "2"' not in files[0].read_text()  # no float16 variables in the graph
    assert json.loads(files[2].read_text())[0]["shape"] == [8, 3, 24, 24]


def test_a_model_can_be_saved_before_the_first_batch(tree):
    """SIGTERM can arrive before any batch ran: the untrained model must still export and load."""
    from sagemaker_cv.algorithms.classification.task import ClassificationTask

    root = tree(per_class=4, val_per_class=2)
    job = load_job(MLPaths(root), algorithms.get("image-classification"), num_gpus=0)
    task = ClassificationTask(job, plan_devices(0), Path(root.parent / "scratch"))
    task.setup(task.check_data())
    files = task.save(1)
    block = mx.gluon.SymbolBlock.imports(str(files[0]), ["data"], str(files[1]))
    probs = block(mx.nd.zeros((2, 3, 24, 24))).asnumpy()
    assert probs.shape == (2, 3) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)


def test_uneven_device_split_follows_the_documented_rule(tree):
    """mini_batch_size=7 on 3 devices: 3, 2, 2 samples (the first devices take the remainder)."""
    from sagemaker_cv.algorithms.classification.task import ClassificationTask

    root = tree(per_class=4, val_per_class=2, hyperparameters={"mini_batch_size": "7"})
    job = load_job(MLPaths(root), algorithms.get("image-classification"), num_gpus=0)
    task = ClassificationTask(job, plan_devices(0, cpu_devices=3), Path(root.parent / "scratch"))
    task.setup(task.check_data())
    batch = next(task.batches(0))
    data, labels = zip(*task.device_parts(batch))
    assert [d.shape[0] for d in data] == [3, 2, 2] and [str(d.context) for d in data] == [
        "cpu(0)",
        "cpu(1)",
        "cpu(2)",
    ]
    assert np.array_equal(np.concatenate([d.asnumpy() for d in data]), batch.data[0].asnumpy())
    assert np.array_equal(np.concatenate([y.asnumpy() for y in labels]), batch.label[0].asnumpy())
