"""Every optimizer every schema offers is built with exactly the hyperparameters that schema
documents for it, and MXNet accepts them (it refuses unknown arguments)."""

from __future__ import annotations

import mxnet as mx
import pytest

from sagemaker_cv import algorithms
from sagemaker_cv.training.optim import optimizer_params

REQUIRED = {"num_classes": "3", "num_training_samples": "100"}
CASES = [
    (name, choice)
    for name, record in algorithms.REGISTRY.items()
    for choice in record.schema.by_name["optimizer"].choices
]


def _distinct_values(schema):
    """A distinct valid value for every float hyperparameter, so a swapped argument shows."""
    raw = dict(REQUIRED)
    value = 0.11
    for p in schema.params:
        if p.optimizers or p.name == "learning_rate":
            raw[p.name] = str(round(value, 2))
            value += 0.07
    return raw


@pytest.mark.parametrize("algorithm,optimizer", CASES)
def test_each_optimizer_gets_exactly_its_documented_hyperparameters(algorithm, optimizer):
    schema = algorithms.get(algorithm).schema
    hp, _ = schema.parse({**_distinct_values(schema), "optimizer": optimizer})
    kwargs = optimizer_params(schema, hp)
    documented = {p.optimizers[optimizer]: hp[p.name] for p in schema.params if optimizer in p.optimizers}
    assert kwargs == {
        "learning_rate": hp.learning_rate,
        **documented,
        **schema.optimizer_constants.get(optimizer, {}),
    }
    for p in schema.params:
        # The documentation names each optimizer a value goes to, and only those.
        if optimizer in p.optimizers:
            assert optimizer in p.description, (p.name, p.description)
    opt = mx.optimizer.create(optimizer, **kwargs)
    assert opt.lr == pytest.approx(hp.learning_rate)
    for arg, value in kwargs.items():
        if arg != "learning_rate":
            assert getattr(opt, arg) == pytest.approx(value), arg


def test_image_classification_adapter_is_the_builtins():
    schema = algorithms.get("image-classification").schema
    raw = {**REQUIRED, "momentum": "0.8", "weight_decay": "0.01", "beta_1": "0.7", "beta_2": "0.6"}
    raw.update(eps="0.5", gamma="0.4", learning_rate="0.1")

    def params(optimizer, **extra):
        hp, _ = schema.parse({**raw, "optimizer": optimizer})
        return optimizer_params(schema, hp, **extra)

    assert params("sgd") == {"learning_rate": 0.1, "momentum": 0.8, "wd": 0.01}
    assert params("nag") == {"learning_rate": 0.1, "momentum": 0.8, "wd": 0.01}
    assert params("adam") == {"learning_rate": 0.1, "beta1": 0.7, "beta2": 0.6, "epsilon": 0.5}
    assert params("rmsprop") == {"learning_rate": 0.1, "gamma1": 0.4, "epsilon": 0.5}
    assert params("sgd", multi_precision=True)["multi_precision"] is True


def test_detection_weight_decay_reaches_rmsprop_and_not_adadelta():
    schema = algorithms.get("object-detection").schema
    hp, _ = schema.parse({**REQUIRED, "optimizer": "rmsprop", "weight_decay": "0.01"})
    assert optimizer_params(schema, hp)["wd"] == 0.01
    hp, _ = schema.parse({**REQUIRED, "optimizer": "adadelta", "weight_decay": "0.01"})
    assert optimizer_params(schema, hp) == {"learning_rate": 0.001}
