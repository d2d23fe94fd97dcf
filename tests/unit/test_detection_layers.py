"""freeze_layer_pattern names: GluonCV's base networks mapped onto the built-in's MXNet symbols."""

from __future__ import annotations

import pytest

from sagemaker_cv.algorithms.detection.layers import (
    layer_name,
    resnet_builtin_name,
    select_frozen,
    vgg_builtin_name,
)


@pytest.mark.parametrize(
    ("key", "builtin"),
    [
        ("stages.0.0.weight", "conv1_1_weight"),
        ("stages.0.2.bias", "conv1_2_bias"),
        ("stages.1.2.weight", "conv2_2_weight"),
        ("stages.4.4.weight", "conv5_3_weight"),
        ("stages.5.0.weight", "fc6_weight"),
        ("stages.5.2.bias", "fc7_bias"),
        ("norm4.scale", None),
        ("extras.0.0.weight", None),
    ],
)
def test_vgg_layers_are_named_as_in_the_builtins_symbol(key, builtin):
    assert vgg_builtin_name(key) == builtin


@pytest.mark.parametrize(
    ("key", "builtin"),
    [
        ("conv1.weight", "conv0_weight"),
        ("bn1.running_mean", "bn0_moving_mean"),
        ("layer1.0.conv1.weight", "stage1_unit1_conv1_weight"),
        ("layer2.3.bn2.gamma", "stage2_unit4_bn2_gamma"),
        ("layer3.0.downsample.0.weight", "stage3_unit1_sc_weight"),
        ("layer4.0.downsample.1.running_var", "stage4_unit1_sc_bn_moving_var"),
        ("fc.weight", None),
    ],
)
def test_resnet_layers_are_named_as_in_the_builtins_symbol(key, builtin):
    assert resnet_builtin_name(key) == builtin


def test_the_documented_example_freezes_exactly_the_first_two_vgg_blocks():
    # GluonCV's extractor: 13 convolutions in five stages and the dilated stage (fc6, fc7), each
    # conv followed by its ReLU; Gluon numbers the convolutions vgg16_conv0 ... in order.
    layers = [(s, 2 * i) for s, n in enumerate((2, 2, 3, 3, 3, 2)) for i in range(n)]
    ours = {
        f"vgg16_conv{n}_{kind}": vgg_builtin_name(f"stages.{s}.{i}.{kind}")
        for n, (s, i) in enumerate(layers)
        for kind in ("weight", "bias")
    }
    frozen = select_frozen(ours, "^(conv1_|conv2_).*")
    assert sorted(ours[n] for n in frozen) == sorted(
        f"conv{b}_{i}_{kind}" for b in (1, 2) for i in (1, 2) for kind in ("weight", "bias")
    )
    # Our own names match too; and a pattern that names nothing freezes nothing.
    assert select_frozen(ours, "^vgg16_conv0_") == ["vgg16_conv0_weight", "vgg16_conv0_bias"]
    assert select_frozen(ours, "^stage1_") == []


def test_layer_names_drop_the_parameter_kind():
    assert [
        layer_name(n) for n in ("conv1_1_weight", "bn0_moving_mean", "stage1_unit1_sc_bn_beta", "fc7_bias")
    ] == [
        "conv1_1",
        "bn0",
        "stage1_unit1_sc_bn",
        "fc7",
    ]
