"""`sagemaker-cv weights import` with MXNet and GluonCV: the file it writes, its name, and its
refusals. (That the names and values match timm's models is tests/weights' job, with torch.)"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from safetensors.numpy import save_file

from sagemaker_cv import cli
from sagemaker_cv.contract.errors import ClientError
from sagemaker_cv.tools.weights import gluon, import_checkpoint
from sagemaker_cv.training.pretrained import SOURCES, pretrained_file

pytestmark = pytest.mark.fast


@pytest.fixture(scope="module")
def resnet18_tensors() -> dict:
    """A resnet18 checkpoint under the names the plan reads (random values)."""
    net = gluon.build("resnet18_v1b")
    expected = gluon.expected_shapes("resnet18_v1b", net)
    plan = gluon.plan("resnet18_v1b", net, expected, {})
    rng = np.random.RandomState(0)
    return {take.source: rng.rand(*take.shape).astype(np.float32) for take in plan.takes.values()}


def test_every_source_has_a_conversion():
    assert set(SOURCES) == set(gluon.NETWORKS)


def test_the_file_loads_in_gluoncv_and_the_trainer_finds_it(resnet18_tensors, tmp_path, monkeypatch):
    save_file(resnet18_tensors, str(tmp_path / "model.safetensors"))
    models = tmp_path / "home" / "models"
    models.mkdir(parents=True)
    (models / "resnet18_v1b.params").write_bytes(b"an older, bare-named file")
    (models / "resnet18_v1-a0666292.params").write_bytes(b"another network's")
    written = import_checkpoint(tmp_path / "model.safetensors", "resnet18_v1b", models)
    # GluonCV's naming: the first 8 hex digits of the file's SHA-1
    assert written.name == f"resnet18_v1b-{hashlib.sha1(written.read_bytes()).hexdigest()[:8]}.params"
    assert sorted(p.name for p in models.iterdir()) == sorted([written.name, "resnet18_v1-a0666292.params"])
    monkeypatch.setenv("MXNET_HOME", str(tmp_path / "home"))
    assert pretrained_file("resnet18_v1b") == written

    from gluoncv.model_zoo import get_model

    net = get_model("resnet18_v1b")
    net.load_parameters(str(written))
    assert np.array_equal(net.layer2[0].bn1.gamma.data().asnumpy(), resnet18_tensors["layer2.0.bn1.weight"])

    # A second import of other weights replaces the file, so the trainer cannot pick a stale one.
    save_file({**resnet18_tensors, "fc.bias": np.ones(1000, np.float32)}, str(tmp_path / "other.safetensors"))
    again = import_checkpoint(tmp_path / "other.safetensors", "resnet18_v1b", models)
    assert again != written and not written.exists() and again.exists()


def test_a_wrong_or_partial_checkpoint_is_refused_before_anything_is_written(resnet18_tensors, tmp_path):
    models = tmp_path / "models"
    wrong = dict(resnet18_tensors)
    wrong["layer2.0.conv1.weight"] = np.zeros((64, 128, 3, 3), np.float32)
    del wrong["bn1.running_var"]
    save_file(wrong, str(tmp_path / "wrong.safetensors"))
    with pytest.raises(ClientError) as info:
        import_checkpoint(tmp_path / "wrong.safetensors", "resnet18_v1b", models)
    assert info.value.reason() == (
        f"ClientError: {tmp_path / 'wrong.safetensors'} does not fit resnet18_v1b (2 problem(s)): "
        "layer2.0.conv1.weight: expected shape (128, 64, 3, 3), got (64, 128, 3, 3); "
        "bn1.running_var: missing, expected shape (64,)"
    )
    assert not models.exists()

    # resnet18's tensors are a partial resnet34, and resnet34's hold more than a resnet18
    save_file(resnet18_tensors, str(tmp_path / "r18.safetensors"))
    with pytest.raises(
        ClientError, match=r"layer1\.2\.conv1\.weight: missing, expected shape \(64, 64, 3, 3\)"
    ):
        import_checkpoint(tmp_path / "r18.safetensors", "resnet34_v1b", models)
    extra = dict(resnet18_tensors, **{"layer1.2.conv1.weight": np.zeros((64, 64, 3, 3), np.float32)})
    save_file(extra, str(tmp_path / "extra.safetensors"))
    with pytest.raises(
        ClientError, match=r"layer1\.2\.conv1\.weight: unexpected tensor of shape \(64, 64, 3, 3\)"
    ):
        import_checkpoint(tmp_path / "extra.safetensors", "resnet18_v1b", models)
    # a ResNet offered as SSD's VGG base: VGG's layers are named as missing
    with pytest.raises(ClientError, match=r"features\.0\.weight: missing, expected shape \(64, 3, 3, 3\)"):
        import_checkpoint(tmp_path / "r18.safetensors", "vgg16_atrous", models)
    assert not models.exists()


def test_the_command_line_reports_refusals_on_stderr(tmp_path, capsys):
    (tmp_path / "x.safetensors").write_bytes(b"garbage")
    assert cli.main(["weights", "import", str(tmp_path / "x.safetensors"), "--network", "resnet18_v1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sagemaker-cv weights: --network 'resnet18_v1': expected one of resnet18_v1b, ")
    assert cli.main(["weights", "import", str(tmp_path / "x.safetensors"), "--network", "resnet18_v1b"]) == 2
    assert "not a readable safetensors file" in capsys.readouterr().err


def test_gluoncvs_vgg_base_is_what_the_file_holds():
    net = gluon.build("vgg16_atrous")
    expected = gluon.expected_shapes("vgg16_atrous", net)
    assert len(expected) == 1 + 2 * 15 + 1 and not any(k.startswith("extras.") for k in expected)
    assert expected["stages.5.0.weight"] == (1024, 512, 3, 3) and expected["stages.5.2.weight"] == (
        1024,
        1024,
        1,
        1,
    )
    assert np.allclose(gluon.initial_values(net, ["norm4.scale"])["norm4.scale"], 20)
    # the ImageNet std x 255 that conv1_1 of torchvision's VGG is divided by on import
    assert np.allclose(net.init_scale.data().asnumpy().ravel(), [58.395, 57.12, 57.375])


def test_fetch_downloads_each_source_and_imports_it(resnet18_tensors, tmp_path, monkeypatch):
    """`make weights`: the hub is the only thing replaced (tests never download)."""
    import sys
    import types

    from sagemaker_cv.tools.weights import main

    downloaded = tmp_path / "cache" / "model.safetensors"
    downloaded.parent.mkdir()
    save_file(resnet18_tensors, str(downloaded))
    asked = []

    def hf_hub_download(repo_id: str, filename: str) -> str:
        asked.append((repo_id, filename))
        return str(downloaded)

    monkeypatch.setitem(
        sys.modules, "huggingface_hub", types.SimpleNamespace(hf_hub_download=hf_hub_download)
    )
    assert main(["fetch", "--models-dir", str(tmp_path / "weights"), "resnet18_v1b"]) == 0
    assert asked == [("timm/resnet18.gluon_in1k", "model.safetensors")]
    assert [p.name.split("-")[0] for p in (tmp_path / "weights").iterdir()] == ["resnet18_v1b"]
    assert main(["fetch", "--models-dir", str(tmp_path / "weights"), "resnet18_v1"]) == 2
