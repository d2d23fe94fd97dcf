"""Every hyperparameter of the three schemas: accepted at its bounds, refused just outside them,
in each encoding callers use (str(), json.dumps, SDK v3)."""

from __future__ import annotations

import json

import pytest

from sagemaker_cv import algorithms
from sagemaker_cv.contract.errors import ClientError
from sagemaker_cv.schema import Context
from sagemaker_cv.schema.base import BOOLEAN, FLOAT, INTEGER, STRING

ALGORITHMS = algorithms.NAMES
REQUIRED = {"num_classes": 5, "num_training_samples": 100}
# Values that make the cross-field rules pass for the probe of one key.
CONTEXT = Context(num_gpus=1, num_hosts=2)


def encodings(value):
    """The strings SDK v2 (str), framework estimators (json.dumps) and SDK v3 produce."""
    out = {str(value), json.dumps(value)}
    if isinstance(value, bool):
        out |= {"true" if value else "false", "1" if value else "0"}
    return sorted(out)


def probes(param):
    """(valid values, invalid values) at and around the documented bounds."""
    if param.kind is BOOLEAN:
        return [True, False], ["yes", "2", "maybe"]
    if param.choices:
        bad = ["not-a-choice"] + ([max(param.choices) + 1] if param.kind is INTEGER else [])
        return list(param.choices), bad
    if param.kind in (INTEGER, FLOAT):
        step = 1 if param.kind is INTEGER else 1e-6
        good, bad = [], ["abc", "nan"]
        if param.low is not None:
            (bad if param.low_open else good).append(param.low)
            good.append(param.low + step)
            bad.append(param.low - step)
        if param.high is not None:
            (bad if param.high_open else good).append(param.high)
            good.append(param.high - step)
            bad.append(param.high + step)
        if param.kind is INTEGER:
            bad.append("1.5")
        return good, bad
    return [], []


def base_values(algorithm, name):
    hp = dict(REQUIRED)
    if algorithm == "semantic-segmentation" and name == "num_classes":
        pass
    if name in ("checkpoint_frequency",):
        hp["epochs"] = 10**6
    if name == "top_k":
        hp["num_classes"] = 10**6
    if name == "num_classes":
        hp.pop("num_classes")
    if name == "use_weighted_loss":
        hp["multi_label"] = "1"
    if name == "lr_scheduler":
        hp["lr_scheduler_step"] = "1"
    if name == "resize":
        hp["image_shape"] = "3,1,1"
    if algorithm == "image-classification" and name == "use_pretrained_model":
        hp["num_layers"] = "18"
    return hp


CASES = [
    (alg, p.name) for alg in ALGORITHMS for p in algorithms.get(alg).schema.params if p.kind is not STRING
]


@pytest.mark.parametrize("algorithm,name", CASES)
def test_bounds_in_every_encoding(algorithm, name):
    schema = algorithms.get(algorithm).schema
    param = schema.by_name[name]
    good, bad = probes(param)
    assert good or bad, f"{name} has no probes"
    for value in good:
        for text in encodings(value):
            hp, _ = schema.parse({**base_values(algorithm, name), name: text}, CONTEXT)
            assert hp[name] == param.parse(text)
    for value in bad:
        for text in encodings(value):
            with pytest.raises(ClientError) as info:
                schema.parse({**base_values(algorithm, name), name: text}, CONTEXT)
            message = info.value.reason()
            assert message.startswith("ClientError: ")
            assert f"{name}=" in message and "expected" in message, message


def test_string_parameters():
    ic = algorithms.get("image-classification").schema
    hp, _ = ic.parse(
        {**REQUIRED, "image_shape": '"1, 28, 28"', "lr_scheduler_step": "10, 20", "epochs": "30"}
    )
    assert hp.image_shape == (1, 28, 28) and hp.lr_scheduler_step == (10, 20)
    for bad in ("3,224", "2,224,224", "a,b,c", "3,0,10"):
        with pytest.raises(ClientError, match="image_shape="):
            ic.parse({**REQUIRED, "image_shape": bad})
    for bad in ("20, 10", "0", "x"):
        with pytest.raises(ClientError, match="lr_scheduler_step="):
            ic.parse({**REQUIRED, "lr_scheduler_step": bad})
    od = algorithms.get("object-detection").schema
    assert od.parse({**REQUIRED, "freeze_layer_pattern": "^(conv1_|conv2_).*"})[0].freeze_layer_pattern
    with pytest.raises(ClientError, match="freeze_layer_pattern="):
        od.parse({**REQUIRED, "freeze_layer_pattern": "(unclosed"})


def test_defaults_follow_the_newer_documentation():
    hp, _ = algorithms.get("image-classification").schema.parse(REQUIRED)
    assert hp.momentum == 0.9 and hp.num_layers == 152 and hp.mini_batch_size == 32 and hp.epochs == 30
    assert hp.early_stopping is False and hp.early_stopping_patience == 5
    od, _ = algorithms.get("object-detection").schema.parse(REQUIRED)
    assert od.use_pretrained_model is True and od.image_shape == 300 and od.label_width == 350
    ss, _ = algorithms.get("semantic-segmentation").schema.parse(REQUIRED)
    assert (ss.crop_size, ss.base_size, ss.epochs, ss.mini_batch_size) == (480, 520, 30, 4)
    assert ss.lr_scheduler == "poly" and ss.syncbn is False


def test_required_and_unknown_keys_are_all_reported():
    with pytest.raises(ClientError) as info:
        algorithms.get("image-classification").schema.parse({"epoch": "3", "learning_rate": "2"})
    text = info.value.reason()
    assert "unknown hyperparameter 'epoch' (did you mean 'epochs'?)" in text
    assert "learning_rate='2': expected a float in [0, 1]" in text
    assert "missing required hyperparameter num_classes" in text
    assert "missing required hyperparameter num_training_samples" in text


def test_tooling_keys_are_ignored():
    hp, _ = algorithms.get("image-classification").schema.parse(
        {**REQUIRED, "_tuning_objective_metric": "validation:accuracy", "sagemaker_estimator_module": '"x"'}
    )
    assert "_tuning_objective_metric" not in hp


def test_empty_string_means_default():
    hp, _ = algorithms.get("object-detection").schema.parse(
        {**REQUIRED, "lr_scheduler_step": "", "freeze_layer_pattern": ""}
    )
    assert hp.lr_scheduler_step is None and hp.freeze_layer_pattern is None


@pytest.mark.parametrize(
    "extra,fragment",
    [
        ({"checkpoint_frequency": "31"}, "checkpoint_frequency=31: must be no greater than epochs=30"),
        ({"lr_scheduler_step": "10,30"}, "every epoch must be below epochs=30"),
        ({"top_k": "6"}, "top_k=6: must be no greater than num_classes=5"),
        ({"use_weighted_loss": "1"}, "use_weighted_loss=1: only valid with multi_label=1"),
        ({"use_pretrained_model": "1", "num_layers": "20"}, "num_layers=20: transfer learning"),
        (
            {"use_pretrained_model": "1", "num_layers": "200"},
            "published for num_layers 18, 34, 50, 101, 152 only",
        ),
        (
            {"use_pretrained_model": "1", "num_layers": "18", "image_shape": "1,224,224"},
            "needs 3-channel images",
        ),
        ({"precision_dtype": "float16"}, "precision_dtype=float16: needs a GPU"),
        ({"resize": "100"}, "resize=100: must be at least"),
    ],
)
def test_cross_field_rules(extra, fragment):
    with pytest.raises(ClientError) as info:
        algorithms.get("image-classification").schema.parse({**REQUIRED, **extra}, Context(num_gpus=0))
    assert fragment in info.value.reason()


def test_resize_required_for_image_content():
    ctx = Context(content_types={"train": "application/x-image", "train_lst": "application/x-image"})
    with pytest.raises(ClientError, match="resize: required with image content types"):
        algorithms.get("image-classification").schema.parse(REQUIRED, ctx)
    algorithms.get("image-classification").schema.parse({**REQUIRED, "resize": "256"}, ctx)


def test_float16_is_fine_with_a_gpu_and_kv_store_warns_on_one_host():
    hp, warnings = algorithms.get("image-classification").schema.parse(
        {**REQUIRED, "precision_dtype": "float16", "kv_store": "dist_sync"}, Context(num_gpus=1, num_hosts=1)
    )
    assert hp.precision_dtype == "float16"
    assert any("kv_store=dist_sync has no effect on a single host" in w for w in warnings)


def test_segmentation_step_schedule_needs_steps():
    with pytest.raises(ClientError, match="lr_scheduler_step: required with lr_scheduler=step"):
        algorithms.get("semantic-segmentation").schema.parse({**REQUIRED, "lr_scheduler": "step"})


def test_early_stopping_needs_validation_channel():
    ctx = Context(content_types={"train": "application/x-recordio"})
    with pytest.raises(ClientError, match="needs a validation channel"):
        algorithms.get("image-classification").schema.parse({**REQUIRED, "early_stopping": "True"}, ctx)


def test_final_configuration_spells_values_like_the_builtin():
    schema = algorithms.get("image-classification").schema
    hp, _ = schema.parse({**REQUIRED, "multi_label": "True", "lr_scheduler_step": "1,2"})
    final = schema.final_configuration(hp)
    assert final["multi_label"] == 1 and final["lr_scheduler_step"] == "1,2" and "top_k" not in final


def test_ignored_compatibility_keys_are_accepted_and_reported():
    schema = algorithms.get("image-classification").schema
    hp, warnings = schema.parse({**REQUIRED, "model_prefix": "my-model"})
    assert hp.model_prefix == "my-model"
    assert warnings == [
        "hyperparameter model_prefix='my-model' is accepted for compatibility with the built-in and ignored"
    ]
    assert "no effect" in schema.by_name["model_prefix"].description
    _, warnings = schema.parse(REQUIRED)
    assert warnings == []


@pytest.mark.parametrize("value", ["１", "٣", "1_0", "1_0e-1", "2" * 30])
@pytest.mark.parametrize("name", ["num_classes", "learning_rate", "image_shape"])
def test_numbers_are_ascii_digits_within_what_mxnet_can_hold(name, value):
    """float() and int() also read '１', '٣' and '1_0'; MXNet's integer arguments are 32-bit."""
    hp = dict(REQUIRED)
    hp[name] = f"3,{value},24" if name == "image_shape" else value
    if name == "learning_rate" and value == "2" * 30:
        return  # a huge float is simply above the bound, tested elsewhere
    with pytest.raises(ClientError, match=name):
        algorithms.get("image-classification").schema.parse(hp, Context())


def test_integers_above_int32_are_refused_with_the_limit():
    with pytest.raises(ClientError) as info:
        algorithms.get("image-classification").schema.parse(
            {**REQUIRED, "num_training_samples": str(2**31)}, Context()
        )
    assert info.value.problems == [
        "num_training_samples='2147483648': expected an integer >= 1 (at most 2147483647)"
    ]


def test_learning_rate_zero_is_accepted_with_a_warning():
    _, warnings = algorithms.get("image-classification").schema.parse(
        {**REQUIRED, "learning_rate": "0"}, Context()
    )
    assert warnings == ["learning_rate=0: the weights will not change; training runs but learns nothing"]
