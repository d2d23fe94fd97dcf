"""Bad inputs that need a process of their own: files the job may not read (a real permission
error: the command runs without the capabilities that let root read anything), and the largest
accepted sizes, which must train rather than crash.

Tier: slow (`validate` in subprocesses, 6-10 s each; one epoch of SSD ResNet-50 at image_shape
2048: 122 s and 9.8 GB peak RSS, measured).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ml_tree import Run, cli_env, set_hyperparameters, train

from sagemaker_cv.tools.detection_demo import write_detection_tree
from sagemaker_cv.tools.segmentation_demo import write_segmentation_tree

#: run as root without CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH, so that file modes apply
UNPRIVILEGED = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]


def without_privileges(root: Path, algorithm: str) -> Run:
    prefix = UNPRIVILEGED if os.geteuid() == 0 else []
    proc = subprocess.run(
        [
            *prefix,
            sys.executable,
            "-m",
            "sagemaker_cv",
            "validate",
            "--algorithm",
            algorithm,
            "--ml-root",
            str(root),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=cli_env(),
    )
    return Run(root, proc)


def unreadable(*paths: Path) -> None:
    for path in paths:
        path.chmod(0)


@pytest.fixture
def locked(tmp_path):
    """Paths made unreadable by a test get their modes back, so that pytest can remove them."""
    if os.geteuid() == 0 and not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv: root reads files whatever their mode")
    yield
    for path in tmp_path.rglob("*"):
        if not path.is_symlink():
            path.chmod(0o755)


def test_detection_names_each_file_it_may_not_read(tmp_path, locked):
    root = tmp_path / "ml"
    write_detection_tree(
        root, content="images", train_images=4, val_images=2, hyperparameters={"mini_batch_size": "2"}
    )
    data = root / "input/data"
    hidden = data / "train/private"
    hidden.mkdir()
    (data / "train/image_0003.jpg").rename(hidden / "image_0003.jpg")
    unreadable(data / "train/image_0001.jpg", data / "validation_annotation/image_0000.json", hidden)
    run = without_privileges(root, "object-detection")
    assert run.code == 2, run.out[-3000:]
    for words in (
        "train/image_0001.jpg: cannot be read (Permission denied)",
        "validation_annotation/image_0000.json: cannot be read (Permission denied)",
        "train/private: cannot be listed (Permission denied)",
    ):
        assert words in run.failure, (words, run.failure)
    # Each is named once: an image in train/private may be image_0003.json's, and the annotation
    # of validation/image_0000.jpg is the file it may not read.
    for words in ("Traceback", "AlgorithmError", "annotation without image", "image without annotation"):
        assert words not in run.failure, (words, run.failure)


def test_segmentation_names_each_file_it_may_not_read(tmp_path, locked):
    root = tmp_path / "ml"
    write_segmentation_tree(
        root, train=4, validation=2, label_map="map", hyperparameters={"mini_batch_size": 2}
    )
    data = root / "input/data"
    unreadable(
        data / "train/img_0001.jpg",
        data / "validation_annotation/img_0000.png",
        data / "label_map/train_label_map.json",
    )
    run = without_privileges(root, "semantic-segmentation")
    assert run.code == 2, run.out[-3000:]
    # The label map is read first: its problem alone stops the job.
    assert run.failure == "ClientError: label_map/train_label_map.json: cannot be read (Permission denied)"
    (data / "label_map/train_label_map.json").chmod(0o644)
    run = without_privileges(root, "semantic-segmentation")
    assert run.code == 2, run.out[-3000:]
    for words in (
        "train/img_0001.jpg: cannot be read (Permission denied)",
        "validation_annotation/img_0000.png: cannot be read (Permission denied)",
    ):
        assert words in run.failure, (words, run.failure)
    for words in ("not a readable image", "no label image", "no image with this name"):
        assert words not in run.failure, (words, run.failure)


def test_the_largest_accepted_sizes_train(tmp_path):
    """image_shape=2048 (the schema's bound; above it MXNet's CPU convolutions crashed on some
    sizes) and label_width=10000 train one epoch with a ResNet-50 base."""
    root = tmp_path / "ml"
    write_detection_tree(
        root,
        content="images",
        train_images=2,
        val_images=1,
        hyperparameters={
            "mini_batch_size": "1",
            "epochs": "1",
            "base_network": "resnet-50",
            "use_pretrained_model": "0",
            "image_shape": "2048",
            "label_width": "10000",
        },
    )
    run = train(root, "--algorithm", "object-detection", timeout=1800)
    assert run.code == 0, run.out[-3000:]
    assert "label padding width: 10000" in run.out
    assert "model_algo_1-0000.params" in run.model_files
    shapes = json.loads((root / "model/model_algo_1-symbol.json").read_text())
    assert shapes["nodes"]


def test_a_too_large_job_is_refused_before_anything_is_built(tmp_path):
    """More memory than the host has: refused with the estimate, in seconds, by `train` too."""
    root = tmp_path / "ml"
    write_detection_tree(
        root, content="images", train_images=2, val_images=1, hyperparameters={"epochs": "1"}
    )
    set_hyperparameters(root, image_shape=2048, mini_batch_size=500)
    run = train(root, "--algorithm", "object-detection")
    assert run.code == 2, run.out[-3000:]
    assert "needs at least about" in run.failure and "lower mini_batch_size or image_shape" in run.failure
    assert run.model_files == []
