"""Recognising a trained model from its files (algorithms.trained). Tier: fast."""

from __future__ import annotations

import json
import tarfile

import pytest

from sagemaker_cv.algorithms.trained import open_model
from sagemaker_cv.contract.errors import ClientError

MARKERS = {
    "image-classification": ["image-classification-symbol.json", "image-classification-0002.params"],
    "object-detection": ["model_algo_1-symbol.json", "model_algo_1-0000.params", "hyperparams.json"],
    # the built-in segmenter writes only these two
    "semantic-segmentation": ["model_algo-1", "hyperparams.json"],
}


def model_dir(tmp_path, algorithm):
    directory = tmp_path / algorithm
    directory.mkdir()
    for name in MARKERS[algorithm]:
        (directory / name).write_text(json.dumps({"num_classes": 3}) if name == "hyperparams.json" else "x")
    return directory


@pytest.mark.parametrize("algorithm", sorted(MARKERS))
def test_each_algorithm_is_recognised_by_its_files(tmp_path, algorithm):
    model = open_model(model_dir(tmp_path, algorithm), tmp_path / "unpacked")
    assert model.algorithm.name == algorithm
    assert model.hyperparameters == ({} if algorithm == "image-classification" else {"num_classes": "3"})


def test_an_archive_is_unpacked_with_the_guard(tmp_path):
    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for path in model_dir(tmp_path, "object-detection").iterdir():
            tar.add(path, arcname=path.name)
    model = open_model(archive, tmp_path / "unpacked")
    assert model.algorithm.name == "object-detection"
    assert model.directory == tmp_path / "unpacked"

    hostile = tmp_path / "hostile.tar.gz"
    with tarfile.open(hostile, "w:gz") as tar:
        tar.add(tmp_path / "object-detection" / "hyperparams.json", arcname="../escape.json")
    with pytest.raises(ClientError, match=r"model .*hostile.tar.gz: member '../escape.json' leaves"):
        open_model(hostile, tmp_path / "other")


def test_unknown_or_mismatched_files_are_named(tmp_path):
    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / "weights.bin").write_text("x")
    with pytest.raises(
        ClientError, match=r"holds weights.bin.*expected one of image-classification-symbol.json"
    ):
        open_model(stray, tmp_path / "u")
    with pytest.raises(
        ClientError, match=r"algorithm 'semantic-segmentation' was asked for.*object-detection"
    ):
        open_model(model_dir(tmp_path, "object-detection"), tmp_path / "u", algorithm="semantic-segmentation")
    with pytest.raises(ClientError, match="no such file or directory"):
        open_model(tmp_path / "missing", tmp_path / "u")


def test_an_unreadable_hyperparams_file_is_named(tmp_path):
    directory = model_dir(tmp_path, "semantic-segmentation")
    (directory / "hyperparams.json").write_text("[1, 2]")
    with pytest.raises(ClientError, match="hyperparams.json holds list, expected an object"):
        open_model(directory, tmp_path / "u")
