"""The weight conversion's pure parts (name and shape plans, decimation, refusals), the listing,
and the PyTorch-file reader's refusals; no MXNet, no torch."""

from __future__ import annotations

import pickle
import zipfile

import numpy as np
import pytest

from sagemaker_cv import algorithms, cli
from sagemaker_cv.contract.errors import ClientError
from sagemaker_cv.tools.weights import format_rows, rows
from sagemaker_cv.tools.weights.checkpoint import Checkpoint, read_torch_zip
from sagemaker_cv.tools.weights.convert import (
    Plan,
    apply,
    decimate,
    mismatches,
    refusal,
    resnet_plan,
    vgg_atrous_plan,
)
from sagemaker_cv.training.pretrained import SOURCES, find_file, pretrained_file

RESNET = {
    "conv1.weight": (64, 3, 7, 7),
    "bn1.gamma": (64,),
    "bn1.beta": (64,),
    "bn1.running_mean": (64,),
    "bn1.running_var": (64,),
    "layer1.0.downsample.1.gamma": (256,),
    "fc.weight": (1000, 2048),
    "fc.bias": (1000,),
}


def test_resnet_names_differ_only_in_batch_norm():
    plan = resnet_plan(RESNET)
    assert {t: take.source for t, take in plan.takes.items()} == {
        "conv1.weight": "conv1.weight",
        "bn1.gamma": "bn1.weight",
        "bn1.beta": "bn1.bias",
        "bn1.running_mean": "bn1.running_mean",
        "bn1.running_var": "bn1.running_var",
        "layer1.0.downsample.1.gamma": "layer1.0.downsample.1.weight",
        "fc.weight": "fc.weight",
        "fc.bias": "fc.bias",
    }
    assert all(take.shape == RESNET[t] for t, take in plan.takes.items())


def test_a_fitting_checkpoint_has_no_mismatches_and_converts_to_float32():
    plan = resnet_plan(RESNET)
    source = {take.source: np.full(take.shape, 2, dtype=np.float16) for take in plan.takes.values()}
    source["bn1.num_batches_tracked"] = np.array(7)  # PyTorch's counter: ignored
    assert mismatches(plan, RESNET, {k: v.shape for k, v in source.items()}) == []
    out = apply(plan, source)
    assert out.keys() == RESNET.keys() and all(a.dtype == np.float32 and (a == 2).all() for a in out.values())


def test_mismatches_name_each_tensor_with_both_shapes_wrong_ones_first():
    plan = resnet_plan(RESNET)
    source = {take.source: take.shape for take in plan.takes.values()}
    source["fc.weight"] = (10, 2048)
    del source["bn1.weight"]
    source["layer5.0.conv1.weight"] = (3, 3)
    assert mismatches(plan, RESNET, source) == [
        "fc.weight: expected shape (1000, 2048), got (10, 2048)",
        "bn1.weight: missing, expected shape (64,) (GluonCV's bn1.gamma)",
        "layer5.0.conv1.weight: unexpected tensor of shape (3, 3)",
    ]


def test_a_refusal_shows_the_first_problems_and_counts_the_rest():
    problems = [f"t{i}: missing" for i in range(9)]
    text = refusal("model.safetensors", "resnet50_v1s", problems)
    assert text.startswith(
        "model.safetensors does not fit resnet50_v1s (9 problem(s)): t0: missing; t1: missing"
    )
    assert text.endswith("t5: missing; and 3 more")


def test_a_plan_without_a_source_for_a_parameter_is_our_bug():
    with pytest.raises(ValueError, match="no source for fc.weight"):
        mismatches(Plan({}), {"fc.weight": (2, 2)}, {})


def test_decimation_keeps_every_nth_element_from_the_first():
    kernel = np.arange(49).reshape(1, 1, 7, 7)
    assert decimate(kernel, (1, 1, 3, 3))[0, 0].tolist() == [[0, 3, 6], [21, 24, 27], [42, 45, 48]]
    assert decimate(np.arange(4096), (4,)).tolist() == list(range(0, 4096, 4))


def vgg_atrous_shapes() -> dict:
    """GluonCV's VGG atrous base, parameter by parameter (VGG-16's widths; fc6/fc7 reduced)."""
    shapes = {"init_scale": (1, 3, 1, 1)}
    widths = [(64, 3), (64, 64)], [(128, 64), (128, 128)], [(256, 128), (256, 256), (256, 256)]
    widths += [(512, 256), (512, 512), (512, 512)], [(512, 512)] * 3
    for stage, convs in enumerate(widths):
        for i, (out, inp) in enumerate(convs):
            shapes[f"stages.{stage}.{2 * i}.weight"] = (out, inp, 3, 3)
            shapes[f"stages.{stage}.{2 * i}.bias"] = (out,)
    shapes.update({"stages.5.0.weight": (1024, 512, 3, 3), "stages.5.0.bias": (1024,)})
    shapes.update({"stages.5.2.weight": (1024, 1024, 1, 1), "stages.5.2.bias": (1024,)})
    shapes["norm4.scale"] = (1, 512, 1, 1)
    return shapes


def vgg16_source(linear: bool) -> dict:
    """VGG-16's tensors as timm (fc6/fc7 as convolutions) or torchvision (linear) name them."""
    shapes = {}
    for index, take in zip(
        (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28), list(vgg_atrous_shapes())[1:27:2]
    ):
        shapes[f"features.{index}.weight"] = vgg_atrous_shapes()[take]
        shapes[f"features.{index}.bias"] = (vgg_atrous_shapes()[take][0],)
    if linear:
        shapes.update({"classifier.0.weight": (4096, 25088), "classifier.0.bias": (4096,)})
        shapes.update({"classifier.3.weight": (4096, 4096), "classifier.3.bias": (4096,)})
        shapes.update({"classifier.6.weight": (1000, 4096), "classifier.6.bias": (1000,)})
    else:
        shapes.update({"pre_logits.fc1.weight": (4096, 512, 7, 7), "pre_logits.fc1.bias": (4096,)})
        shapes.update({"pre_logits.fc2.weight": (4096, 4096, 1, 1), "pre_logits.fc2.bias": (4096,)})
        shapes.update({"head.fc.weight": (1000, 4096), "head.fc.bias": (1000,)})
    return shapes


@pytest.mark.parametrize("linear", [False, True])
def test_vgg_atrous_plan_takes_vgg16s_layers_in_order(linear):
    expected, source = vgg_atrous_shapes(), vgg16_source(linear)
    plan = vgg_atrous_plan(expected, source, init_scale=np.array([2.0, 4.0, 8.0]))
    assert mismatches(plan, expected, source) == []  # the ImageNet classifier (fc8) is left out
    assert plan.keep == {"init_scale", "norm4.scale"}
    assert plan.takes["stages.0.0.weight"].source == "features.0.weight"
    assert plan.takes["stages.2.4.bias"].source == "features.14.bias"
    assert plan.takes["stages.4.4.weight"].source == "features.28.weight"
    fc6, fc7 = ("classifier.0", "classifier.3") if linear else ("pre_logits.fc1", "pre_logits.fc2")
    assert plan.takes["stages.5.0.weight"].source == fc6 + ".weight"
    assert plan.takes["stages.5.2.bias"].source == fc7 + ".bias"
    # conv1_1 sees GluonCV's input times init_scale: its weights are divided by it per input channel
    first = plan.takes["stages.0.0.weight"].transform(np.ones((64, 3, 3, 3), np.float32))
    assert first[5, :, 1, 2].tolist() == [0.5, 0.25, 0.125]
    assert (plan.takes["stages.0.2.weight"].transform(np.ones((2, 2))) == 1).all()
    assert plan.takes["stages.5.0.bias"].transform(np.arange(4096)).tolist() == list(range(0, 4096, 4))


def test_a_vgg16_with_batch_norm_is_refused_by_name():
    expected = vgg_atrous_shapes()
    source = dict(vgg16_source(False), **{"features.1.weight": (64,), "features.1.running_var": (64,)})
    source["features.2.weight"] = source.pop("features.5.weight")  # vgg16_bn's conv1_2 sits at 3
    problems = mismatches(vgg_atrous_plan(expected, source, np.ones(3)), expected, source)
    assert (
        problems[0]
        == "features.2.weight: expected shape (64, 64, 3, 3), got (128, 64, 3, 3) (GluonCV's stages.0.2.weight)"
    )
    assert (
        "features.5.weight: missing, expected shape (128, 64, 3, 3) (GluonCV's stages.1.0.weight)" in problems
    )
    assert "features.1.running_var: unexpected tensor of shape (64,)" in problems


def test_every_network_an_algorithm_loads_has_a_source():
    declared = {p.network for a in algorithms.REGISTRY.values() for p in a.pretrained}
    assert declared == set(SOURCES)
    assert [p.setting for p in algorithms.get("image-classification").pretrained] == [
        f"num_layers={n}" for n in (18, 34, 50, 101, 152)
    ]


def test_weights_list_shows_every_row_and_what_is_present(tmp_path, capsys):
    (tmp_path / "resnet50_v1s-0a1b2c3d.params").write_bytes(b"x")
    (tmp_path / "resnet50_v1-cc729d95.params").write_bytes(b"x")  # another network: v1, not v1b
    assert cli.main(["weights", "list", "--models-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out == format_rows(tmp_path, rows(tmp_path))
    lines = [line.split() for line in out.splitlines()[1:]]
    assert len(lines) == 9
    assert [
        "semantic-segmentation",
        "backbone=resnet-50",
        "resnet50_v1s",
        "resnet50_v1s-0a1b2c3d.params",
    ] in [line[:4] for line in lines]
    assert [
        "object-detection",
        "base_network=resnet-50",
        "resnet50_v1b",
        "missing",
        "timm/resnet50.gluon_in1k",
    ] in [line[:5] for line in lines]
    assert "timm/vgg16.tv_in1k (BSD-3-Clause)" in out and "timm/resnet101s.gluon_in1k (Apache-2.0)" in out


def test_a_missing_file_names_where_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("MXNET_HOME", str(tmp_path))
    assert find_file("vgg16_atrous") is None
    with pytest.raises(ClientError) as info:
        pretrained_file("vgg16_atrous")
    text = info.value.reason()
    assert f"no pretrained weights vgg16_atrous-*.params in {tmp_path / 'models'}" in text
    assert "https://huggingface.co/timm/vgg16.tv_in1k/resolve/main/model.safetensors" in text
    assert "sagemaker-cv weights import FILE --network vgg16_atrous" in text and len(text) < 1024


def test_checkpoints_that_cannot_be_read_are_client_errors(tmp_path):
    (tmp_path / "a.pth").write_bytes(b"\x80\x02legacy pickle")
    (tmp_path / "b.safetensors").write_bytes(b"garbage")
    (tmp_path / "c.h5").write_bytes(b"")
    for name, fragment in (
        ("a.pth", "not a zip-format PyTorch checkpoint"),
        ("b.safetensors", "not a readable safetensors file"),
        ("c.h5", "expected a .safetensors or .pth or .pt or .bin checkpoint"),
        ("nothing.pth", "no such file"),
    ):
        with pytest.raises(ClientError, match=fragment):
            Checkpoint(tmp_path / name)


def test_bfloat16_safetensors_are_refused_with_a_way_out(tmp_path):
    # safetensors' layout: header length, JSON header, raw little-endian data
    header = b'{"w":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}}'
    (tmp_path / "bf16.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + b"\0\0\0\0")
    checkpoint = Checkpoint(tmp_path / "bf16.safetensors")
    assert checkpoint.shapes == {"w": (2,)}
    with pytest.raises(ClientError, match="bfloat16.*import the PyTorch file"):
        checkpoint.arrays(["w"])


class _Exploit:
    def __reduce__(self):
        import os

        return (os.system, ("touch pwned",))


def test_a_pytorch_file_never_runs_code_from_its_pickle(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with zipfile.ZipFile(tmp_path / "evil.pth", "w") as archive:
        archive.writestr("evil/data.pkl", pickle.dumps({"w": _Exploit()}, protocol=2))
    with pytest.raises(ClientError, match=r"holds a (posix|os)\.system, not only tensors"):
        read_torch_zip(tmp_path / "evil.pth")
    assert not (tmp_path / "pwned").exists()
