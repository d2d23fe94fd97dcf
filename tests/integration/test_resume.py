"""Spot-style restarts through the real command line: SIGKILL in the middle of an epoch, then the
same command on the same directories resumes after the last finished epoch and ends with exactly
the weights of an uninterrupted run with the same seed.

Bit for bit, not within a tolerance: every random draw derives from (seed, epoch, pass)
(training.seeding), the optimizer's states and update count are restored, and so is each device's
BatchNorm statistics (two CPU devices here); MXNet's CPU kernels are deterministic for a given
thread count. (Across machines or thread counts float sums could differ in the last bits; both
runs here share the machine.) One exception seen in MXNet 1.9.1 on CPU: with optimizer=nag, two
uninterrupted runs already differ in the last bits once a learning-rate step has passed, so no
resume can match them more closely; sgd is used here.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ml_tree import cli_env, train

from sagemaker_cv.tools.demo import write_example_tree

HP = {
    "epochs": "4",
    "mini_batch_size": "8",
    "num_layers": "20",
    "image_shape": "3,16,16",
    "optimizer": "sgd",
    "learning_rate": "0.05",
    "lr_scheduler_step": "2",
    "lr_scheduler_factor": "0.5",
}


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("resume") / "ml"
    write_example_tree(root, per_class=12, val_per_class=4, image_size=20, hyperparameters=HP)
    (root / "input" / "config" / "checkpointconfig.json").write_text(
        json.dumps({"LocalPath": "/opt/ml/checkpoints", "S3Uri": "s3://bucket/ck"})
    )
    return root


def copy(base: Path, target: Path) -> Path:
    shutil.copytree(base, target)
    return target


def files(directory: Path) -> dict[str, bytes]:
    """The model files' bytes; the symbol's without the `__init__` attributes of Gluon constants,
    which carry a Python object id and so differ between any two processes."""
    out = {}
    for p in sorted(directory.iterdir()):
        data = p.read_bytes()
        if p.name.endswith("-symbol.json"):
            graph = json.loads(data)
            for node in graph["nodes"]:
                node.get("attrs", {}).pop("__init__", None)
            data = json.dumps(graph).encode()
        out[p.name] = data
    return out


def test_sigkill_mid_epoch_then_restart_ends_as_an_uninterrupted_run(base, tmp_path):
    whole = copy(base, tmp_path / "whole")
    # Two CPU devices: the kvstore path of multi-GPU hosts, and BatchNorm statistics per device.
    run = train(whole, SAGEMAKER_CV_SEED=5, SAGEMAKER_CV_CPU_DEVICES=2)
    assert run.code == 0, run.out[-3000:]
    assert "Checkpoints are written to and resumed from" in run.out

    killed = copy(base, tmp_path / "killed")
    proc = subprocess.Popen(
        [sys.executable, "-m", "sagemaker_cv", "train", "--ml-root", str(killed)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=cli_env(SAGEMAKER_CV_SEED=5, SAGEMAKER_CV_LOG_INTERVAL=1, SAGEMAKER_CV_CPU_DEVICES=2),
    )
    before = []
    for line in proc.stdout:
        before.append(line)
        if "Epoch[2] Batch [2]" in line:  # epoch 2 under way; checkpoint-0002 written
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert sorted(p.name for p in (killed / "checkpoints").iterdir()) == [
        "checkpoint-0001",
        "checkpoint-0002",
    ]

    # The restart: another seed in the environment, but the checkpoint's is used.
    again = train(killed, SAGEMAKER_CV_SEED=99, SAGEMAKER_CV_CPU_DEVICES=2)
    assert again.code == 0, again.out[-3000:]
    assert (
        f"Resuming from checkpoint {killed}/checkpoints/checkpoint-0002: epochs 0 to 1 are done, training continues with epoch 2"
        in again.out
    )
    assert "Random seed: 5 (the checkpoint's)" in again.out
    assert (
        "Epoch[0]" not in again.out and "Epoch[1]" not in again.out and "Epoch[2] Train-accuracy" in again.out
    )
    assert again.values("Validation-accuracy") == run.values("Validation-accuracy")[2:]

    # Exactly the uninterrupted run's model files and final state.
    assert files(killed / "model") == files(whole / "model")
    for name in ("weights.params", "device_statistics.params", "optimizer.states"):
        assert (killed / "checkpoints/checkpoint-0004" / name).read_bytes() == (
            whole / "checkpoints/checkpoint-0004" / name
        ).read_bytes()
    assert sorted(p.name for p in (killed / "checkpoints").iterdir()) == [
        "checkpoint-0003",
        "checkpoint-0004",
    ]


def test_a_damaged_newest_checkpoint_is_skipped_and_a_finished_job_stays_finished(base, tmp_path):
    root = copy(base, tmp_path / "ml")
    first = train(root, SAGEMAKER_CV_SEED=3)
    assert first.code == 0, first.out[-3000:]
    model = files(root / "model")
    # A restart after the job ended: nothing left to train; the model is the checkpoint's.
    shutil.rmtree(root / "model")
    started = time.monotonic()
    again = train(root)
    assert again.code == 0, again.out[-3000:]
    assert "epochs 0 to 3 are done" in again.out and "Epoch[" not in again.out
    assert files(root / "model") == model
    # A truncated newest checkpoint: named, skipped, the one before is used.
    weights = root / "checkpoints" / "checkpoint-0004" / "weights.params"
    weights.write_bytes(weights.read_bytes()[:100])
    third = train(root)
    assert third.code == 0, third.out[-3000:]
    assert (
        f"Skipping checkpoint {root}/checkpoints/checkpoint-0004: weights.params has 100 bytes" in third.out
    )
    assert "epochs 0 to 2 are done, training continues with epoch 3" in third.out
    assert "Epoch[3] Train-accuracy" in third.out and "Epoch[2] Train" not in third.out
    assert time.monotonic() - started < 300
