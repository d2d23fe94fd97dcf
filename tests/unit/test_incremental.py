"""Incremental training's checks: the facts an archive gives, the must-match rule, and loading an
exported model into a network built in another process (parameter names differ)."""

from __future__ import annotations

import json
import tarfile

import mxnet as mx
import numpy as np
import pytest

from sagemaker_cv import algorithms
from sagemaker_cv.algorithms.classification.archive import archive_facts, output_activation, symbol_facts
from sagemaker_cv.algorithms.classification.network import WithActivation, classification_network
from sagemaker_cv.algorithms.facts import facts_from_hyperparameters
from sagemaker_cv.contract.config import Channel, ResourceConfig
from sagemaker_cv.contract.errors import ClientError
from sagemaker_cv.contract.paths import MLPaths
from sagemaker_cv.schema import HyperParameters
from sagemaker_cv.training import incremental
from sagemaker_cv.training.export import export_symbol_params, load_exported, structural_params
from sagemaker_cv.training.job import Job


def test_mismatches_name_both_values():
    facts = {"num_classes": 3, "num_layers": 18, "image_shape": (3, 32, 32)}
    hp = {"num_classes": 5, "num_layers": 18, "image_shape": (3, 24, 24), "epochs": 2}
    assert incremental.mismatches(facts, hp, ("num_classes", "num_layers", "image_shape")) == [
        "num_classes: the model in the model channel has 3, this job has 5",
        "image_shape: the model in the model channel has 3,32,32, this job has 3,24,24",
    ]
    # What the archive cannot tell is not compared; lists and tuples are the same shape.
    assert incremental.mismatches({"image_shape": [3, 24, 24]}, hp, ("image_shape", "backbone")) == []


def network(layers, classes, activation="softmax"):
    return WithActivation(classification_network(layers, classes, 3, False, [mx.cpu()]), activation)


@pytest.mark.parametrize("layers", [18, 20, 50, 110])
def test_depth_and_classes_read_from_the_symbol(layers):
    graph = json.loads(network(layers, 7)(mx.sym.var("data")).tojson())
    assert symbol_facts(graph) == {"num_classes": 7, "num_layers": layers}


def export(tmp_path, layers=20, classes=3, activation="softmax", shape=(3, 16, 16)):
    net = network(layers, classes, activation)
    net(mx.nd.zeros((1, *shape)))
    export_symbol_params(net, tmp_path / "image-classification", 4, mx.cpu())
    (tmp_path / "model-shapes.json").write_text(json.dumps([{"shape": [8, *shape], "name": "data"}]))
    return net


def test_an_exported_model_loads_into_a_fresh_network(tmp_path):
    saved = export(tmp_path)
    assert archive_facts(tmp_path) == {"num_classes": 3, "num_layers": 20, "image_shape": (3, 16, 16)}
    fresh = network(20, 3)  # built later: other global names (resnetv11_... instead of resnetv10_...)
    fresh(mx.nd.zeros((1, 3, 16, 16)))
    assert sorted(fresh.collect_params()) != sorted(saved.collect_params())
    assert (
        load_exported(
            fresh,
            tmp_path / "image-classification-symbol.json",
            tmp_path / "image-classification-0004.params",
        )
        is None
    )
    ours, theirs = structural_params(fresh), structural_params(saved)
    assert ours.keys() == theirs.keys()
    for key in ours:
        assert np.array_equal(ours[key].data().asnumpy(), theirs[key].data().asnumpy()), key


def test_another_graph_is_refused(tmp_path):
    export(tmp_path, layers=20)
    other = network(32, 3)
    other(mx.nd.zeros((1, 3, 16, 16)))
    problem = load_exported(
        other, tmp_path / "image-classification-symbol.json", tmp_path / "image-classification-0004.params"
    )
    assert (
        problem
        == "the network in image-classification-symbol.json is not the one this job builds (its graph differs)"
    )


def test_a_multi_label_model_starts_a_single_label_network(tmp_path):
    """The output activation holds no parameter: the task wraps its network in the archive's."""
    export(tmp_path, activation="sigmoid")
    symbol = tmp_path / "image-classification-symbol.json"
    assert output_activation(symbol) == "sigmoid"
    net = classification_network(20, 3, 3, False, [mx.cpu()])  # trained with softmax in this job
    net(mx.nd.zeros((1, 3, 16, 16)))
    params = tmp_path / "image-classification-0004.params"
    assert load_exported(WithActivation(net, "softmax"), symbol, params) is not None  # graphs differ
    assert load_exported(WithActivation(net, output_activation(symbol)), symbol, params) is None


def job(root, channels, **hp):
    values = {"num_classes": 3, "num_layers": 20, "image_shape": (3, 16, 16), **hp}
    return Job(
        algorithms.get("image-classification"),
        MLPaths(root),
        HyperParameters(values),
        ResourceConfig(),
        channels,
    )


def test_prepare_unpacks_and_checks_the_channel(tmp_path):
    files = tmp_path / "files"
    files.mkdir()
    export(files)
    channel_dir = tmp_path / "ml" / "input" / "data" / "model"
    channel_dir.mkdir(parents=True)
    with tarfile.open(channel_dir / "model.tar.gz", "w:gz") as t:
        for f in files.iterdir():
            t.add(f, arcname=f.name)
    channels = {"model": Channel("model", content_type="application/x-sagemaker-model")}
    start = incremental.prepare(job(tmp_path / "ml", channels), tmp_path / "scratch")
    assert (
        start.facts["num_layers"] == 20 and (start.directory / "image-classification-0004.params").is_file()
    )

    with pytest.raises(ClientError) as err:
        incremental.prepare(
            job(tmp_path / "ml", channels, num_classes=5, image_shape=(3, 24, 24)), tmp_path / "s2"
        )
    assert err.value.problems[1:] == [
        "num_classes: the model in the model channel has 3, this job has 5",
        "image_shape: the model in the model channel has 3,16,16, this job has 3,24,24",
    ]
    assert incremental.prepare(job(tmp_path / "ml", {}), tmp_path / "s3") is None


def test_channel_settings_are_checked():
    bad = {"model": Channel("model", content_type="application/x-recordio", input_mode="Pipe")}
    assert incremental.channel_problems(job("/x", bad)) == [
        "channel 'model' ContentType='application/x-recordio': expected application/x-sagemaker-model",
        "channel 'model' TrainingInputMode='Pipe': the model channel is read in File mode",
    ]


def test_graph_signature_ignores_names_only():
    a = {
        "nodes": [
            {"op": "null", "name": "x"},
            {"op": "FullyConnected", "name": "fc0", "attrs": {"num_hidden": "3"}, "inputs": [[0, 0, 0]]},
        ]
    }
    b = {
        "nodes": [
            {"op": "null", "name": "y"},
            {"op": "FullyConnected", "name": "fc9", "attrs": {"num_hidden": "3"}, "inputs": [[0, 0, 0]]},
        ]
    }
    c = {
        "nodes": [
            {"op": "null", "name": "y"},
            {"op": "FullyConnected", "name": "fc9", "attrs": {"num_hidden": "4"}, "inputs": [[0, 0, 0]]},
        ]
    }
    assert incremental.graph_signature(a) == incremental.graph_signature(b) != incremental.graph_signature(c)


def test_facts_from_the_hyperparameters_an_archive_carries(tmp_path):
    """Object detection and segmentation archives carry hyperparams.json (strings), as the built-ins'."""
    (tmp_path / "hyperparams.json").write_text(
        json.dumps({"base_network": "resnet-50", "num_classes": "20", "epochs": "3"})
    )
    facts = facts_from_hyperparameters(
        tmp_path, algorithms.get("object-detection").schema, ("base_network", "num_classes", "image_shape")
    )
    assert facts == {"base_network": "resnet-50", "num_classes": 20}
    (tmp_path / "hyperparams.json").write_text(json.dumps({"num_classes": "many"}))
    with pytest.raises(ClientError, match="hyperparams.json num_classes='many': expected an integer"):
        facts_from_hyperparameters(tmp_path, algorithms.get("object-detection").schema, ("num_classes",))
    with pytest.raises(ClientError, match="hyperparams.json cannot be read"):
        facts_from_hyperparameters(
            tmp_path / "none", algorithms.get("semantic-segmentation").schema, ("backbone",)
        )
