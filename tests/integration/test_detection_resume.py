"""Object detection restarted like a spot job: SIGKILL in the middle of an epoch, then the same
command on the same directories resumes after the last finished epoch and ends with the weights,
optimizer states and model files of an uninterrupted run with the same seed, bit for bit (one CPU
device; test_resume.py says where MXNet itself is not bit-exact). Every pass's iterator is seeded
by (seed, epoch, pass), so the resumed epochs read the same augmented images as the whole run."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from ml_tree import cli_env, model_file_bytes, train

from sagemaker_cv.tools.detection_demo import write_detection_tree

pytestmark = pytest.mark.slow

# Two batches per epoch: the kill lands after the first batch of epoch 1.
HP = {
    "epochs": "3",
    "mini_batch_size": "2",
    "base_network": "resnet-50",
    "use_pretrained_model": "0",
    "optimizer": "sgd",
    "learning_rate": "0.001",
}


def validation_maps(out: str) -> list[str]:
    return [
        line.split("validation mAP <score>=")[1]
        for line in out.splitlines()
        if "validation mAP <score>=" in line
    ]


def test_sigkill_mid_epoch_then_restart_ends_as_an_uninterrupted_run(tmp_path):
    base = tmp_path / "base"
    write_detection_tree(base, content="images", train_images=4, val_images=2, hyperparameters=HP)
    (base / "input/config/checkpointconfig.json").write_text(json.dumps({"LocalPath": "/opt/ml/checkpoints"}))
    whole = shutil.copytree(base, tmp_path / "whole")
    run = train(whole, "--algorithm", "object-detection", SAGEMAKER_CV_SEED=5)
    assert run.code == 0, run.out[-3000:]

    killed = shutil.copytree(base, tmp_path / "killed")
    proc = subprocess.Popen(
        [sys.executable, "-m", "sagemaker_cv", "train", "--algorithm", "object-detection"]
        + ["--ml-root", str(killed)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=cli_env(SAGEMAKER_CV_SEED=5, SAGEMAKER_CV_LOG_INTERVAL=1),
    )
    for line in proc.stdout:
        if "Epoch:    1, batches:      1," in line:  # epoch 1 under way; checkpoint-0001 written
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert sorted(p.name for p in (killed / "checkpoints").iterdir()) == ["checkpoint-0001"]

    again = train(killed, "--algorithm", "object-detection", SAGEMAKER_CV_SEED=99)
    assert again.code == 0, again.out[-3000:]
    assert (
        f"Resuming from checkpoint {killed}/checkpoints/checkpoint-0001: epochs 0 to 0 are done, "
        "training continues with epoch 1" in again.out
    )
    assert "Random seed: 5 (the checkpoint's)" in again.out
    assert "epoch=0," not in again.out and "host=algo-1, epoch=2, validation mAP" in again.out
    assert validation_maps(again.out) == validation_maps(run.out)[1:]

    for name in ("weights.params", "optimizer.states"):
        assert (killed / "checkpoints/checkpoint-0003" / name).read_bytes() == (
            whole / "checkpoints/checkpoint-0003" / name
        ).read_bytes(), name
    assert model_file_bytes(killed / "model") == model_file_bytes(whole / "model")
    assert not any(Path(killed / "model").glob(".*"))  # no temporary file left behind
