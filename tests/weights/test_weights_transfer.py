"""Transfer learning end to end: timm weights -> `sagemaker-cv weights import` -> image
classification with use_pretrained_model=1, where only the output layer starts afresh."""

from __future__ import annotations

import os
import subprocess
import sys

import mxnet as mx
import numpy as np

from sagemaker_cv.algorithms.classification.network import classification_network, resnet
from sagemaker_cv.tools.demo import write_example_tree
from sagemaker_cv.training.export import structural_params


def cli(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sagemaker_cv", *args], capture_output=True, text=True, env=env, timeout=600
    )


def test_transfer_learning_from_an_imported_file(reference, tmp_path, monkeypatch):
    ref = reference("timm", "resnet18")
    home = tmp_path / "home"
    env = {**os.environ, "MXNET_HOME": str(home), "SAGEMAKER_CV_LOG_INTERVAL": "2"}
    imported = cli(
        "weights", "import", str(ref / "resnet18.safetensors"), "--network", "resnet18_v1b", env=env
    )
    assert imported.returncode == 0, imported.stderr[-3000:]
    [path] = (home / "models").glob("resnet18_v1b-*.params")
    assert f"wrote {path}" in imported.stdout
    listing = cli("weights", "list", env=env).stdout
    assert any(
        line.split()[:4] == ["image-classification", "num_layers=18", "resnet18_v1b", path.name]
        for line in listing.splitlines()
    ), listing
    weights = {k: v.asnumpy() for k, v in mx.nd.load(str(path)).items()}

    # Right after set-up: every backbone tensor is the file's, running statistics included; the
    # output layer is new (3 classes) and initialised.
    monkeypatch.setenv("MXNET_HOME", str(home))
    net = classification_network(18, classes=3, channels=3, pretrained=True, ctx=[mx.cpu()])
    params = {k.removeprefix("backbone."): p for k, p in structural_params(net).items()}
    assert set(params) - {"mean", "std"} == set(weights)
    for key, value in weights.items():
        if key.startswith("fc."):
            assert params[key].shape[0] == 3 and np.isfinite(params[key].data().asnumpy()).all()
        else:
            assert np.array_equal(params[key].data().asnumpy(), value), key
    assert params["fc.weight"].data().abs().sum().asscalar() > 0

    # Through the command line: one epoch with learning_rate=0 keeps every learned tensor (the
    # running statistics move with the data, as in any training).
    root = tmp_path / "ml"
    hp = {
        "epochs": "1",
        "mini_batch_size": "8",
        "num_layers": "18",
        "use_pretrained_model": "1",
        "learning_rate": "0",
    }
    write_example_tree(
        root, content="recordio", per_class=8, val_per_class=4, image_size=32, hyperparameters=hp
    )
    run = cli("train", "--ml-root", str(root), env=env)
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    assert "Using pretrained model for initializing weights and transfer learning." in run.stdout + run.stderr
    saved = mx.nd.load(str(next((root / "model").glob("image-classification-*.params"))))
    names = {
        k: p.name for k, p in structural_params(resnet(18, 1000)).items()
    }  # GluonCV's names are per block
    learned = [k for k in weights if not k.startswith("fc.") and "running_" not in k]
    assert learned and all(np.array_equal(saved[f"arg:{names[k]}"].asnumpy(), weights[k]) for k in learned)
    output_layer = [v.shape for k, v in saved.items() if k.startswith("arg:") and "_dense" in k]
    assert output_layer == [(3, 512), (3,)]
