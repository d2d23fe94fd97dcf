"""The command line: dispatch, the failure file and exit codes (no training here)."""

from __future__ import annotations

import json

import pytest

from sagemaker_cv import cli


def write_config(root, hp, channels=None, resource=None):
    config = root / "input" / "config"
    config.mkdir(parents=True, exist_ok=True)
    (config / "hyperparameters.json").write_text(json.dumps(hp))
    (config / "inputdataconfig.json").write_text(
        json.dumps(channels or {"train": {"TrainingInputMode": "File"}})
    )
    if resource is not None:
        (config / "resourceconfig.json").write_text(json.dumps(resource))


def test_client_error_writes_every_problem_and_exits_2(tmp_path, capsys):
    write_config(tmp_path, {"num_classes": "two", "epoch": "3", "mini_batch_size": "0"})
    code = cli.main(["train", "--ml-root", str(tmp_path)])
    assert code == 2
    reason = (tmp_path / "output" / "failure").read_text()
    assert reason.startswith("ClientError: ")
    for fragment in (
        "num_classes='two': expected an integer >= 1",
        "unknown hyperparameter 'epoch' (did you mean 'epochs'?)",
        "mini_batch_size='0': expected an integer >= 1",
        "missing required hyperparameter num_training_samples",
    ):
        assert fragment in reason[:1024]
    out = capsys.readouterr().out
    assert out.startswith("Docker entrypoint called with argument(s): train")
    assert "ERROR" in out and "Customer Error: " in out


def test_config_file_problems_are_client_errors(tmp_path):
    config = tmp_path / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text("{not json")
    (config / "resourceconfig.json").write_text(json.dumps({"current_host": "x", "hosts": ["algo-1"]}))
    assert cli.main(["validate", "--ml-root", str(tmp_path)]) == 2
    reason = (tmp_path / "output" / "failure").read_text()
    assert "hyperparameters.json is not valid JSON" in reason and "current_host='x'" in reason


def test_internal_error_is_an_algorithm_error(tmp_path, monkeypatch, capsys):
    write_config(tmp_path, {"num_classes": "2", "num_training_samples": "10"})
    from sagemaker_cv.training import runner

    def broken(paths, algorithm):
        raise KeyError("unexpected")

    monkeypatch.setattr(runner, "train", broken)
    assert cli.main(["--ml-root", str(tmp_path)]) == 1  # no command: train
    reason = (tmp_path / "output" / "failure").read_text()
    assert reason == "AlgorithmError: KeyError: 'unexpected'"
    assert "Traceback" in capsys.readouterr().out


def test_stale_failure_file_is_removed(tmp_path, monkeypatch):
    write_config(tmp_path, {"num_classes": "2", "num_training_samples": "10"})
    (tmp_path / "output").mkdir()
    (tmp_path / "output" / "failure").write_text("old")
    from sagemaker_cv.training import runner

    monkeypatch.setattr(runner, "train", lambda paths, algorithm: None)
    assert cli.main(["train", "--ml-root", str(tmp_path)]) == 0
    assert not (tmp_path / "output" / "failure").exists()


def test_environment_selects_root_and_algorithm(tmp_path, monkeypatch):
    write_config(tmp_path, {"num_classes": "2", "num_training_samples": "10", "crop_size": "17"})
    monkeypatch.setenv("SAGEMAKER_CV_ML_ROOT", str(tmp_path))
    monkeypatch.setenv("SAGEMAKER_CV_ALGORITHM", "semantic-segmentation")
    # crop_size only exists for semantic segmentation: the schema chosen by the environment applies
    assert cli.main(["validate"]) == 2
    # ... and its own channel checks: the configuration passed, the segmentation channels are missing.
    assert "semantic segmentation needs train, validation" in (tmp_path / "output" / "failure").read_text()


@pytest.mark.parametrize(
    "command,message", [("serve", "trains models only"), ("bogus", "unknown command 'bogus'")]
)
def test_serve_and_unknown_commands(command, message, capsys):
    assert cli.main([command]) == 2
    assert message in capsys.readouterr().err


def test_reference_commands(capsys):
    assert cli.main(["hyperparameters", "--algorithm", "object-detection"]) == 0
    assert "| `base_network` | no | categorical |" in capsys.readouterr().out
    assert cli.main(["metric-definitions", "--algorithm", "image-classification"]) == 0
    defs = json.loads(capsys.readouterr().out)
    assert {"Name": "validation:accuracy", "Regex": defs[6]["Regex"]} in defs
    assert cli.main(["hyperparameters", "--algorithm", "nope"]) == 2


def test_model_archive_must_not_be_inside_the_model_dir(tmp_path, monkeypatch):
    write_config(tmp_path, {"num_classes": "2", "num_training_samples": "10"})
    from sagemaker_cv.training import runner

    monkeypatch.setattr(runner, "train", lambda paths, algorithm: (tmp_path / "model").mkdir())
    code = cli.main(
        ["train", "--ml-root", str(tmp_path), "--model-archive", str(tmp_path / "model" / "m.tar.gz")]
    )
    assert code == 2
    assert "must not be inside the model directory" in (tmp_path / "output" / "failure").read_text()


def test_spec_command(capsys):
    assert (
        cli.main(
            ["spec", "--algorithm", "image-classification", "--image", "1.dkr.ecr/x:1", "--flavor", "cpu"]
        )
        == 0
    )
    spec = json.loads(capsys.readouterr().out)
    instance_types = spec["TrainingSpecification"]["SupportedTrainingInstanceTypes"]
    assert instance_types and all(t.startswith(("ml.m", "ml.c")) for t in instance_types)
    assert cli.main(["spec", "--algorithm", "image-classification", "--image", "bad uri"]) == 2
    assert "image='bad uri'" in capsys.readouterr().err
