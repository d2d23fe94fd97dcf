"""The command line: dispatch, the failure file and exit codes (no training here)."""

from __future__ import annotations

import json
import time

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

    def broken(paths, algorithm, *_, **__):
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

    monkeypatch.setattr(runner, "train", lambda paths, algorithm, *_, **__: None)
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


def test_unknown_commands(capsys):
    assert cli.main(["bogus"]) == 2
    assert "unknown command 'bogus'" in capsys.readouterr().err


def test_serve_without_a_model_names_the_directory(tmp_path, capsys):
    assert cli.main(["serve", "--ml-root", str(tmp_path)]) == 2
    assert f"model {tmp_path / 'model'}: no such file or directory" in capsys.readouterr().out


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

    monkeypatch.setattr(runner, "train", lambda paths, algorithm, *_, **__: (tmp_path / "model").mkdir())
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


def test_a_missing_ml_root_says_so_instead_of_blaming_the_hyperparameters(tmp_path):
    root = tmp_path / "nowhere"
    assert cli.main(["validate", "--ml-root", str(root)]) == 2
    reason = (root / "output" / "failure").read_text()
    assert reason == (
        f"ClientError: {root}/input/config: no such directory; SageMaker writes the job's config files "
        "there (is --ml-root or SAGEMAKER_CV_ML_ROOT right?)"
    )


def test_long_values_and_many_unknown_keys_are_capped_in_log_and_reason(tmp_path, capsys):
    hp = {"num_classes": "2", "num_training_samples": "10", "model_prefix": "p" * 200000}
    hp.update({f"junk{i}": "" for i in range(40000)})
    write_config(tmp_path, hp)
    started = time.monotonic()
    assert cli.main(["validate", "--ml-root", str(tmp_path)]) == 2
    assert time.monotonic() - started < 10
    reason = (tmp_path / "output" / "failure").read_text()
    assert reason.count("unknown hyperparameter '") == 12
    assert reason.endswith("... and 39988 more unknown hyperparameter(s)")
    assert len(capsys.readouterr().out) < 20000

    del hp["model_prefix"]
    hp = {k: v for k, v in hp.items() if not k.startswith("junk")}
    hp["model_prefix"] = "p" * 200000
    write_config(tmp_path, hp, channels={})
    cli.main(["validate", "--ml-root", str(tmp_path)])
    out = capsys.readouterr().out
    assert "p" * 300 not in out and "(200000 characters)" in out


MXNET_TEXTS = [
    (
        'Traceback (most recent call last):\n  File "../3rdparty/dmlc-core/src/recordio.cc", line 71\n'
        "MXNetError: Check failed: stream_->Read(BeginPtr(*out_rec) + size, upper_align) == upper_align: "
        "Invalid RecordIO File upper_align=164",
        "Invalid RecordIO File upper_align=164",
    ),
    (
        'Traceback (most recent call last):\n  File "../src/ndarray/ndarray.cc", line 1854\n'
        "MXNetError: Check failed: fi->Read(&header): Invalid NDArray file format",
        "Invalid NDArray file format",
    ),
    (
        "[12:00:01] ../src/storage/storage.cc:78: Compile with USE_CUDA=1 to enable GPU usage\n"
        "Stack trace:\n  [bt] (0) /usr/lib/libmxnet.so(+0x1) [0x7f]\n  [bt] (1) /usr/lib/libmxnet.so(+0x2) [0x7f]",
        "Compile with USE_CUDA=1 to enable GPU usage",
    ),
]


@pytest.mark.parametrize("text,message", MXNET_TEXTS)
def test_failure_reasons_carry_no_cxx_traceback(text, message):
    from sagemaker_cv.contract.errors import AlgorithmError, ClientError, failure_reason

    assert failure_reason(ClientError(f"pretrained weights x.params: do not fit ({text})")) == (
        f"ClientError: pretrained weights x.params: do not fit ({message})"
    )
    assert failure_reason(RuntimeError(text)) == f"AlgorithmError: RuntimeError: {message}"
    assert failure_reason(AlgorithmError(text)) == f"AlgorithmError: {message}"  # not named twice
    assert (
        failure_reason(ClientError("a plain problem: with colons"))
        == "ClientError: a plain problem: with colons"
    )


class MXNetError(Exception):
    """Stands for mxnet.base.MXNetError (recognised by name: the CLI imports no MXNet)."""


@pytest.mark.parametrize(
    "exc,fragment",
    [
        (MemoryError(), "ClientError: Out of memory"),
        (
            MXNetError(
                "Check failed: param_shape.Size() < (int64_t{1} << 31) - 1 (1099511627776 vs. 2147483647) : "
                "[InitShape-input] Size of tensor you are trying to allocate is larger than 2^31 elements."
            ),
            "ClientError: A tensor would hold more than 2^31 elements",
        ),
        (
            MXNetError(
                "[10:00:00] ../src/storage/./pooled_storage_manager.h:157: cudaMalloc retry failed: out of memory"
            ),
            "ClientError: Out of memory",
        ),
        (
            OSError(28, "No space left on device", "/ml/model/image-classification-0001.params"),
            "ClientError: /ml/model/image-classification-0001.params: no space left on the device (",
        ),
        (
            MXNetError(
                'Traceback (most recent call last):\n  File "../3rdparty/dmlc-core/src/io/local_filesys.cc", line 38\nMXNetError: Check failed: std: :fwrite(ptr, 1, size, fp_) == size: FileStream.Write incomplete'
            ),
            "no space left on the device (",
        ),
    ],
)
def test_resource_exhaustion_is_the_users_to_fix(tmp_path, monkeypatch, exc, fragment):
    write_config(tmp_path, {"num_classes": "2", "num_training_samples": "10"})
    from sagemaker_cv.training import runner

    def exhausted(paths, algorithm, *_, **__):
        raise exc

    monkeypatch.setattr(runner, "train", exhausted)
    assert cli.main(["train", "--ml-root", str(tmp_path)]) == 2
    reason = (tmp_path / "output" / "failure").read_text()
    assert fragment in reason and "Traceback" not in reason


def test_a_stop_before_training_exits_0_without_a_failure(tmp_path, monkeypatch, capsys):
    write_config(tmp_path, {"num_classes": "2", "num_training_samples": "10"})
    from sagemaker_cv.contract.errors import TrainingInterrupted
    from sagemaker_cv.training import runner

    def stopped(paths, algorithm):
        raise TrainingInterrupted("SIGTERM")

    monkeypatch.setattr(runner, "validate", stopped)
    assert cli.main(["validate", "--ml-root", str(tmp_path)]) == 0
    assert not (tmp_path / "output" / "failure").exists()
    assert "Stopped by SIGTERM" in capsys.readouterr().out


@pytest.mark.parametrize("where", ["model/m.tar.gz", "model", "out"])
def test_model_archive_is_checked_before_training(tmp_path, monkeypatch, where):
    write_config(tmp_path, {"num_classes": "2", "num_training_samples": "10"})
    (tmp_path / "model").mkdir()
    (tmp_path / "out").mkdir()
    from sagemaker_cv.training import runner

    trained = []
    monkeypatch.setattr(runner, "train", lambda paths, algorithm, *_, **__: trained.append(1))
    assert cli.main(["train", "--ml-root", str(tmp_path), "--model-archive", str(tmp_path / where)]) == 2
    assert trained == []
    reason = (tmp_path / "output" / "failure").read_text()
    assert "must not be inside the model directory" in reason or "is a directory" in reason
