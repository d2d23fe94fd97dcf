"""`pip install sagemaker-cv` without an extra has no MXNet: the reference commands and `validate`
work, and `train` says what to install instead of failing on an import."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from sagemaker_cv.training.framework import mxnet_missing

# Runs the CLI in a fresh interpreter where `import mxnet` fails as it does when it is not installed.
WITHOUT_MXNET = (
    "import sys; sys.modules['mxnet'] = None; from sagemaker_cv.cli import main; sys.exit(main(sys.argv[1:]))"
)


def cli(*args):
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_MXNET, *args], capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def tree(tmp_path):
    config = tmp_path / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(
        json.dumps({"num_classes": "3", "num_training_samples": "10"})
    )
    (config / "inputdataconfig.json").write_text(
        json.dumps({"train": {"TrainingInputMode": "File", "ContentType": "application/x-recordio"}})
    )
    return tmp_path


def test_train_names_the_extra_and_the_image(tree):
    run = cli("train", "--ml-root", str(tree))
    assert run.returncode == 1, run.stdout + run.stderr
    failure = (tree / "output" / "failure").read_text()
    assert failure.startswith(
        "AlgorithmError: FrameworkMissing: sagemaker-cv train needs MXNet. MXNet is not installed"
    )
    assert "pip install 'sagemaker-cv[cpu]' (mxnet==1.9.1)" in failure and "'sagemaker-cv[gpu]'" in failure
    assert "or train in a sagemaker-cv image" in failure


def test_validate_checks_the_configuration_and_says_what_it_did_not(tree):
    run = cli("validate", "--ml-root", str(tree))
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Configuration valid; the data files were not checked: MXNet is not installed" in run.stdout
    (tree / "input" / "config" / "hyperparameters.json").write_text(json.dumps({"num_classes": "x"}))
    bad = cli("validate", "--ml-root", str(tree))
    assert bad.returncode == 2 and "num_classes='x'" in (tree / "output" / "failure").read_text()


def test_reference_commands_need_no_framework():
    assert cli("hyperparameters", "--algorithm", "object-detection").stdout.startswith("|")
    spec = json.loads(cli("spec", "--algorithm", "image-classification", "--image", "x").stdout)
    assert spec["AlgorithmName"] == "sagemaker-cv-image-classification"


def test_installed_here():
    assert mxnet_missing() is None
