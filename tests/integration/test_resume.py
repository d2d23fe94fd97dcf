"""Spot-style restarts through the real command line: SIGKILL in the middle of an epoch, then the
same command on the same directories resumes after the last finished epoch and ends with exactly
the weights of an uninterrupted run with the same seed.

Bit for bit, not within a tolerance: every random draw derives from (seed, epoch, pass)
(training.seeding), the optimizer's states and update count are restored, and on one CPU device
MXNet's kernels are deterministic. Not so everywhere, and no resume can do better than two
uninterrupted runs do:
* several devices on one host (SAGEMAKER_CV_CPU_DEVICES=2 here; GPUs likewise) run their
  operators concurrently, and under load the threads' split of reductions (BatchNorm statistics,
  gradient sums) varies, so two uninterrupted runs already differ in the last bits; what a
  checkpoint restores on such a host is checked exactly below (every device's state), without a
  comparison of two trainings;
* with optimizer=nag, two uninterrupted runs already differ once a learning-rate step has passed
  (MXNet 1.9.1 on CPU); sgd is used here.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from ml_tree import killed_and_restarted, model_file_bytes, train

from sagemaker_cv import algorithms
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


def test_sigkill_mid_epoch_then_restart_ends_as_an_uninterrupted_run(base, tmp_path):
    # Epoch 2 under way: checkpoint-0002 is written.
    run, again = killed_and_restarted(
        copy(base, tmp_path / "base"),  # its copies go beside it, in this test's directory
        "image-classification",
        "Epoch[2] Batch [2]",
        ("checkpoint-0001", "checkpoint-0002"),
    )
    whole, killed = run.root, again.root
    assert "Checkpoints are written to and resumed from" in run.out
    # The restart had another seed in the environment, but the checkpoint's is used.
    assert (
        f"Resuming from checkpoint {killed}/checkpoints/checkpoint-0002: epochs 0 to 1 are done, training continues with epoch 2"
        in again.out
    )
    assert (
        "Epoch[0]" not in again.out and "Epoch[1]" not in again.out and "Epoch[2] Train-accuracy" in again.out
    )
    assert again.values("Validation-accuracy") == run.values("Validation-accuracy")[2:]

    # Exactly the uninterrupted run's model files and final state.
    assert model_file_bytes(killed / "model") == model_file_bytes(whole / "model")
    for name in ("weights.params", "optimizer.states"):
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
    model = model_file_bytes(root / "model")
    # A restart after the job ended: nothing left to train; the model is the checkpoint's.
    shutil.rmtree(root / "model")
    started = time.monotonic()
    again = train(root)
    assert again.code == 0, again.out[-3000:]
    assert "epochs 0 to 3 are done" in again.out and "Epoch[" not in again.out
    assert model_file_bytes(root / "model") == model
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


@pytest.mark.fast
def test_every_devices_batchnorm_statistics_come_back(base, tmp_path):
    """On a host with several devices each keeps its own BatchNorm running statistics (Gluon's
    save_parameters would store their average): a checkpoint restores each device's exactly."""
    from sagemaker_cv.algorithms.classification.task import ClassificationTask
    from sagemaker_cv.contract.paths import MLPaths
    from sagemaker_cv.training.devices import plan_devices
    from sagemaker_cv.training.export import init_trainer, structural_params
    from sagemaker_cv.training.job import load_job

    job = load_job(MLPaths(base), algorithms.get("image-classification"), num_gpus=0)

    def task(scratch):
        t = ClassificationTask(job, plan_devices(0, cpu_devices=2), tmp_path / scratch)
        t.setup(t.check_data())
        return t

    trained = task("a")
    for _, batch in zip(range(3), trained.batches(0)):
        trained.train_step(batch)
    trained.save_state(tmp_path / "state")
    restored = task("b")
    restored.load_state(tmp_path / "state", updates=3)
    init_trainer(restored.trainer)  # what the first step does: must not undo the restore
    statistics = [
        k for k, p in structural_params(trained.net).items() if p.grad_req == "null" and "running" in k
    ]
    assert statistics
    differ = 0
    for key in statistics:
        before = [v.asnumpy() for v in structural_params(trained.net)[key].list_data()]
        after = [v.asnumpy() for v in structural_params(restored.net)[key].list_data()]
        assert all(np.array_equal(b, a) for b, a in zip(before, after)), key
        differ += not np.array_equal(before[0], before[1])
    assert differ  # not vacuous: the devices' statistics are not the same
    for key, param in structural_params(trained.net).items():
        if param.grad_req != "null":
            assert np.array_equal(
                param.data().asnumpy(), structural_params(restored.net)[key].data().asnumpy()
            )
