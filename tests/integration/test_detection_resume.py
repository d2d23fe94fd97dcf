"""Object detection restarted like a spot job: SIGKILL in the middle of an epoch, then the same
command on the same directories resumes after the last finished epoch and ends with the weights,
optimizer states and model files of an uninterrupted run with the same seed, bit for bit (one CPU
device; test_resume.py says where MXNet itself is not bit-exact). Every pass's iterator is seeded
by (seed, epoch, pass), so the resumed epochs read the same augmented images as the whole run."""

from __future__ import annotations

import json

from ml_tree import killed_and_restarted, model_file_bytes

from sagemaker_cv.tools.detection_demo import write_detection_tree

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
    # Epoch 1 under way: checkpoint-0001 is written.
    whole, again = killed_and_restarted(base, "object-detection", "Epoch:    1, batches:      1,")
    killed = again.root
    assert (
        f"Resuming from checkpoint {killed}/checkpoints/checkpoint-0001: epochs 0 to 0 are done, "
        "training continues with epoch 1" in again.out
    )
    assert "epoch=0," not in again.out and "host=algo-1, epoch=2, validation mAP" in again.out
    assert validation_maps(again.out) == validation_maps(whole.out)[1:]

    for name in ("weights.params", "optimizer.states"):
        assert (killed / "checkpoints/checkpoint-0003" / name).read_bytes() == (
            whole.root / "checkpoints/checkpoint-0003" / name
        ).read_bytes(), name
    assert model_file_bytes(killed / "model") == model_file_bytes(whole.root / "model")
