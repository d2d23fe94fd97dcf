"""Every ResNet source, converted and loaded by GluonCV, computes what timm computes."""

from __future__ import annotations

import mxnet as mx
import numpy as np
import pytest
from gluoncv.model_zoo import get_model
from weights_helpers import TOLERANCE, record

from sagemaker_cv.tools.weights import import_checkpoint
from sagemaker_cv.training.export import structural_params
from sagemaker_cv.training.pretrained import SOURCES, pretrained_file

# timm's model name -> GluonCV's network (the hub repositories in SOURCES are timm/<model>.gluon_in1k)
RESNETS = {
    "resnet18": "resnet18_v1b",
    "resnet34": "resnet34_v1b",
    "resnet50": "resnet50_v1b",
    "resnet101": "resnet101_v1b",
    "resnet152": "resnet152_v1b",
    "resnet50s": "resnet50_v1s",
    "resnet101s": "resnet101_v1s",
}


def test_the_table_covers_every_resnet_source():
    assert {n for n in SOURCES if n.startswith("resnet")} == set(RESNETS.values())
    assert all(SOURCES[n].repo == f"timm/{m}.gluon_in1k" for m, n in RESNETS.items())


@pytest.mark.parametrize("model,network", RESNETS.items())
def test_gluoncv_computes_what_timm_computes(model, network, reference, tmp_path, monkeypatch):
    ref = reference("timm", model, ("safetensors", "pth") if model == "resnet18" else ("safetensors",))
    monkeypatch.setenv("MXNET_HOME", str(tmp_path / "home"))
    written = import_checkpoint(ref / f"{model}.safetensors", network, tmp_path / "home" / "models")
    assert pretrained_file(network) == written  # the trainers find it by GluonCV's name

    net = get_model(network)
    net.load_parameters(str(written))  # as GluonCV's model zoo loads its own files: strict
    x = np.load(ref / "input.npy")
    expected = np.load(ref / "outputs.npz")["logits"]
    got = net(mx.nd.array(x)).asnumpy()
    assert record(f"{model} -> {network}", expected, got) < TOLERANCE

    # The comparison reaches the deepest layer: disturbing its last norm's statistics shows.
    last = [p for k, p in structural_params(net).items() if k.endswith("running_var")][-1]
    last.set_data(last.data() * 4)
    assert np.abs(net(mx.nd.array(x)).asnumpy() - expected).max() > 100 * TOLERANCE

    if model == "resnet18":  # PyTorch's own file format, read without torch: the same params file
        again = import_checkpoint(ref / f"{model}.pth", network, tmp_path / "from-pth")
        assert again.name == written.name and again.read_bytes() == written.read_bytes()
