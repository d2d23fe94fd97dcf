"""A job's life around the training loop: where it keeps scratch files, what it does with an
earlier run's model files, how a stop is honoured before training, and what `validate` checks up
front so that it fails exactly as `train` would."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import cv2
import numpy as np
from ml_tree import cli_env, in_process, set_hyperparameters, train

SCRATCH = ("input", "sagemaker-cv-scratch")


def slow_lst_tree(tree, copies=300):
    """An .lst job whose scan takes many seconds: one large (but well compressed) image, listed
    `copies` times."""
    root = tree(content="lst", hyperparameters={"epochs": "1"})
    yy, xx = np.mgrid[0:3000, 0:3000]
    gradient = np.dstack([(xx + yy) % 256, xx % 256, yy % 256]).astype(np.uint8)
    cv2.imwrite(str(root / "input/data/train/big.png"), gradient, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    lines = [f"{i}\t{i % 3}\tbig.png" for i in range(copies)]
    (root / "input/data/train_lst/train.lst").write_text("\n".join(lines) + "\n")
    return root


def start(root, command="train", **env):
    proc = subprocess.Popen(
        [sys.executable, "-m", "sagemaker_cv", command, "--ml-root", str(root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=cli_env(**env),
    )
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if "Creating record files for train.lst" in line:
            break
    time.sleep(1.0)  # well inside the scan
    return proc, seen


def test_sigterm_while_the_data_is_scanned_ends_within_seconds_without_a_model(tree):
    root = slow_lst_tree(tree)
    proc, seen = start(root)
    proc.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    rest, _ = proc.communicate(timeout=60)
    elapsed = time.monotonic() - signalled
    out = "".join(seen) + rest
    assert proc.returncode == 0, out[-3000:]
    assert elapsed < 5, elapsed
    assert "Stopped by SIGTERM before training started: no model was written" in out
    assert "Epoch[0]" not in out and list((root / "model").iterdir()) == []
    assert list(root.joinpath(*SCRATCH).iterdir()) == []  # its scratch files went with it
    assert not (root / "output" / "failure").exists()


def test_scratch_is_on_the_ml_root_and_a_killed_runs_leftovers_are_removed(tree, tmp_path):
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    root = slow_lst_tree(tree)
    proc, _ = start(root, TMPDIR=tmpdir)
    proc.kill()  # as the OOM killer or a spot reclaim would: no clean-up runs
    proc.communicate(timeout=30)
    assert list(tmpdir.iterdir()) == []  # nothing was ever written outside the ml root
    leftovers = list(root.joinpath(*SCRATCH).iterdir())
    assert len(leftovers) == 1 and (leftovers[0] / "train.rec").exists()

    (root / "input/data/train_lst/train.lst").write_text("0\t0\tbig.png\n")
    set_hyperparameters(root, mini_batch_size=1, num_training_samples=1)
    run = in_process(root, TMPDIR=tmpdir)
    assert run.code == 0, run.out[-3000:]
    assert f"Removed scratch files an earlier run left behind: {leftovers[0]} (" in run.out
    assert list(root.joinpath(*SCRATCH).iterdir()) == [] and list(tmpdir.iterdir()) == []


def test_a_run_owns_its_model_directory(tree):
    root = tree(per_class=4, val_per_class=2, hyperparameters={"epochs": "1"})
    model = root / "model"
    # A killed run's later epoch, and its half-written file, beside a file of the user's.
    (model / "image-classification-0003.params").write_bytes(b"old weights")
    (model / ".sagemaker-cv-tmp-image-classification-0004.params").write_bytes(b"half")
    (model / "notes.txt").write_text("mine")
    run = train(root)
    assert run.code == 0, run.out[-3000:]
    assert run.model_files == [
        "image-classification-0001.params",
        "image-classification-symbol.json",
        "model-shapes.json",
        "notes.txt",
    ]
    assert "Removed the model files an earlier run left in" in run.out
    assert "image-classification-0003.params" in run.out


def test_a_batch_smaller_than_the_devices_trains_on_fewer_devices(tree):
    root = tree(per_class=4, val_per_class=2, hyperparameters={"epochs": "1", "mini_batch_size": "2"})
    run = train(root, SAGEMAKER_CV_CPU_DEVICES=4)
    assert run.code == 0, run.out[-3000:]
    assert (
        "mini_batch_size=2 is smaller than the 4 cpu devices of this host: training on 2 of them" in run.out
    )
    assert "Training on 2 cpu device(s)" in run.out


def test_validate_checks_the_model_directory_and_the_pretrained_weights_up_front(tree, tmp_path):
    root = tree(per_class=4, val_per_class=2)
    (root / "model").rmdir()
    (root / "model").write_text("a file where the model directory should be")
    run = in_process(root)
    assert run.code == 2, run.out[-3000:]
    assert (
        run.failure
        == f"ClientError: {root}/model: is not a directory; the model is written into this directory"
    )

    (root / "model").unlink()
    set_hyperparameters(root, use_pretrained_model=1, num_layers=18)
    run = in_process(root, MXNET_HOME=tmp_path / "empty")
    assert run.code == 2, run.out[-3000:]
    assert "use_pretrained_model=1: no pretrained weights resnet18_v1b-*.params in" in run.failure
    assert not (root / "model").exists()  # validate writes nothing
