"""Semantic segmentation restarted like a spot job: SIGKILL in the middle of an epoch, then the
same command on the same directories resumes after the last finished epoch and ends with the
model files of an uninterrupted run with the same seed, bit for bit (one CPU device; test_resume.py says
where MXNet itself is not bit-exact)."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from ml_tree import cli_env, model_file_bytes, train

from sagemaker_cv.tools.segmentation_demo import write_segmentation_tree

HP = {"epochs": 2, "crop_size": 17, "base_size": 20, "mini_batch_size": 2, "optimizer": "sgd"}


def test_sigkill_mid_epoch_then_restart_ends_as_an_uninterrupted_run(tmp_path):
    base = tmp_path / "base"
    write_segmentation_tree(base, train=4, validation=1, sizes=(17, 21), hyperparameters=HP)
    (base / "input/config/checkpointconfig.json").write_text(json.dumps({"LocalPath": "/opt/ml/checkpoints"}))
    whole = shutil.copytree(base, tmp_path / "whole")
    run = train(whole, "--algorithm", "semantic-segmentation", SAGEMAKER_CV_SEED=5)
    assert run.code == 0, run.out[-3000:]

    killed = shutil.copytree(base, tmp_path / "killed")
    proc = subprocess.Popen(
        [sys.executable, "-m", "sagemaker_cv", "train", "--algorithm", "semantic-segmentation"]
        + ["--ml-root", str(killed)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=cli_env(SAGEMAKER_CV_SEED=5, SAGEMAKER_CV_LOG_INTERVAL=1),
    )
    for line in proc.stdout:
        if "#progress_notice. epoch: 1, iterations: 1 " in line:  # checkpoint-0001 written
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert sorted(p.name for p in (killed / "checkpoints").iterdir()) == ["checkpoint-0001"]

    again = train(killed, "--algorithm", "semantic-segmentation", SAGEMAKER_CV_SEED=99)
    assert again.code == 0, again.out[-3000:]
    assert "training continues with epoch 1" in again.out and "Random seed: 5 (the checkpoint's)" in again.out
    assert "epoch: 0," not in again.out and "host: algo-1, epoch: 1, validation mIOU" in again.out
    assert model_file_bytes(killed / "model") == model_file_bytes(whole / "model")
    assert not any(Path(killed / "model").glob(".*"))  # no temporary file left behind
