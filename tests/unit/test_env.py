from __future__ import annotations

import os

import pytest

from sagemaker_cv import algorithms
from sagemaker_cv.contract.config import load_json, parse_input_data_config, parse_resource_config
from sagemaker_cv.contract.errors import ClientError


def test_resource_config_full_and_minimal():
    rc = parse_resource_config(
        {
            "current_host": "algo-2",
            "hosts": ["algo-1", "algo-2"],
            "network_interface_name": "eth1",
            "current_instance_type": "ml.p3.2xlarge",
            "topology": None,
        }
    )
    assert (
        rc.primary_host == "algo-1"
        and not rc.is_primary
        and rc.rank == 1
        and rc.network_interface_name == "eth1"
    )
    # Older local mode writes only current_host and hosts; SDK v2 hosts carry a random suffix.
    rc = parse_resource_config({"current_host": "algo-1-x7k2p", "hosts": ["algo-1-x7k2p"]})
    assert rc.is_primary and rc.network_interface_name is None and rc.num_hosts == 1
    assert parse_resource_config(None).hosts == ("algo-1",)


@pytest.mark.parametrize(
    "data,fragment",
    [
        ({"current_host": "algo-3", "hosts": ["algo-1"]}, "current_host='algo-3'"),
        ({"hosts": []}, "hosts=[]"),
        ({"hosts": ["a", "a"]}, "must be unique"),
        ([1], "must be a JSON object"),
    ],
)
def test_resource_config_errors(data, fragment):
    with pytest.raises(ClientError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        parse_resource_config(data)


def test_input_data_config_is_read_defensively():
    channels = parse_input_data_config(
        {
            "train": {
                "ContentType": "application/x-recordio; label-format=class-id",
                "TrainingInputMode": "File",
            },
            "validation": {"TrainingInputMode": "File"},  # local mode: no distribution keys
        }
    )
    train = channels["train"]
    assert train.media_type == "application/x-recordio"
    assert train.content_type_params == {"label-format": "class-id"}
    assert train.distribution == "FullyReplicated"
    assert channels["validation"].content_type is None and channels["validation"].media_type is None


def test_input_data_config_errors_are_all_reported():
    with pytest.raises(ClientError) as info:
        parse_input_data_config(
            {
                "train": {"TrainingInputMode": "Stream"},
                "validation": {"S3DistributionType": "Sharded"},
                "x": 3,
            }
        )
    text = info.value.reason()
    assert (
        "TrainingInputMode='Stream'" in text
        and "S3DistributionType='Sharded'" in text
        and "channel 'x'" in text
    )


# ---- reading the files -------------------------------------------------------------------------


def test_config_files_may_start_with_a_byte_order_mark(tmp_path):
    path = tmp_path / "hyperparameters.json"
    path.write_bytes('\ufeff{"num_classes": "2"}'.encode())
    assert load_json(path, required=True) == {"num_classes": "2"}


@pytest.mark.parametrize(
    "make,fragment",
    [
        (lambda p: p.mkdir(), "is a directory; File-mode input must be regular files"),
        (lambda p: os.mkfifo(p), "is a FIFO (named pipe); File-mode input must be regular files"),
        (lambda p: p.write_text("[" * 100000 + "]" * 100000), "JSON nested more than"),
        (lambda p: p.write_text('{"a": "' + "x" * (2 << 20) + '"}'), "bytes, more than the 1048576"),
        (lambda p: p.write_bytes(b'{"a": "\xff"}'), "not UTF-8 text (byte 0xff at offset 7)"),
    ],
)
def test_unusable_config_files_are_client_errors_naming_them(tmp_path, make, fragment, no_hang):
    path = tmp_path / "hyperparameters.json"
    make(path)
    with pytest.raises(ClientError) as info:
        load_json(path, required=False)
    assert info.value.problems[0].startswith(str(path)) and fragment in info.value.problems[0]


def test_an_unreadable_config_file_is_a_client_error(tmp_path, monkeypatch):
    path = tmp_path / "hyperparameters.json"
    path.write_text("{}")
    real_open = os.open

    def refuse(file, *args, **kwargs):  # the tests run as root, for whom mode 000 means nothing
        if str(file) == str(path):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(ClientError, match=r"hyperparameters.json: cannot be read \(Permission denied\)"):
        load_json(path, required=True)


@pytest.mark.parametrize("document", ["null", "[]", '"text"', "3"])
def test_hyperparameters_that_are_not_an_object_are_a_client_error(tmp_path, document):
    from sagemaker_cv.contract.paths import MLPaths
    from sagemaker_cv.training.job import load_job

    paths = MLPaths(tmp_path)
    paths.config_dir.mkdir(parents=True)
    paths.hyperparameters.write_text(document)
    with pytest.raises(ClientError, match="hyperparameters.json must be a JSON object"):
        load_job(paths, algorithms.get("image-classification"), num_gpus=0)
