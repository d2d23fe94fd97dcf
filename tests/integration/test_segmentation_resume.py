"""Semantic segmentation restarted like a spot job: SIGKILL in the middle of an epoch, then the
same command on the same directories resumes after the last finished epoch and ends with the
model files of an uninterrupted run with the same seed, bit for bit (one CPU device; test_resume.py says
where MXNet itself is not bit-exact)."""

from __future__ import annotations

import json

from ml_tree import killed_and_restarted, model_file_bytes

from sagemaker_cv.tools.segmentation_demo import write_segmentation_tree

HP = {"epochs": 2, "crop_size": 17, "base_size": 20, "mini_batch_size": 2, "optimizer": "sgd"}


def test_sigkill_mid_epoch_then_restart_ends_as_an_uninterrupted_run(tmp_path):
    base = tmp_path / "base"
    write_segmentation_tree(base, train=4, validation=1, sizes=(17, 21), hyperparameters=HP)
    (base / "input/config/checkpointconfig.json").write_text(json.dumps({"LocalPath": "/opt/ml/checkpoints"}))
    whole, again = killed_and_restarted(
        base, "semantic-segmentation", "#progress_notice. epoch: 1, iterations: 1 "
    )
    assert "training continues with epoch 1" in again.out
    assert "epoch: 0," not in again.out and "host: algo-1, epoch: 1, validation mIOU" in again.out
    assert model_file_bytes(again.root / "model") == model_file_bytes(whole.root / "model")
