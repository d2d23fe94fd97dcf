"""Tier: slow (trains image classification three times, ~30 s). A resumed job's learning record:
a job killed mid-epoch and restarted continues metrics.jsonl and the TensorBoard events without
repeating an epoch; a new container (SageMaker's restart: no output directory) rebuilds them from
the checkpoint."""

from __future__ import annotations

import json
import shutil

import pytest
from ml_tree import killed_and_restarted, train

from sagemaker_cv.tools.demo import write_example_tree

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")

HP = {
    "epochs": "4",
    "mini_batch_size": "8",
    "num_layers": "20",
    "image_shape": "3,16,16",
    "learning_rate": "0.05",
}


def records(root) -> list[dict]:
    return [json.loads(line) for line in (root / "output/data/metrics.jsonl").read_text().splitlines()]


def scalars(root) -> dict:
    accumulator = event_accumulator.EventAccumulator(str(root / "output/tensorboard"))
    accumulator.Reload()
    return {t: [(e.step, e.value) for e in accumulator.Scalars(t)] for t in accumulator.Tags()["scalars"]}


def test_a_killed_and_restarted_job_records_every_epoch_once(tmp_path):
    base = tmp_path / "base"
    write_example_tree(base, per_class=12, val_per_class=4, image_size=20, hyperparameters=HP)
    (base / "input/config/checkpointconfig.json").write_text(json.dumps({"LocalPath": "/opt/ml/checkpoints"}))
    whole, again = killed_and_restarted(
        base, "image-classification", "Epoch[2] Batch [2]", ("checkpoint-0001", "checkpoint-0002")
    )
    killed = again.root
    assert [r["epoch"] for r in records(killed)] == [0, 1, 2, 3]
    # the same learning as the uninterrupted job (the resume tests prove the weights equal)
    for name in ("validation:accuracy", "train:accuracy:epoch", "train:loss:epoch"):
        assert [r[name] for r in records(killed)] == [r[name] for r in records(whole.root)]
    events = scalars(killed)
    assert (
        len(list((killed / "output/tensorboard").iterdir())) == 2
    )  # the killed run's file, and the restart's
    assert [v for _, v in events["epoch/epoch"]] == [0.0, 1.0, 2.0, 3.0]
    for tag, points in events.items():
        steps = [s for s, _ in points]
        assert steps == sorted(set(steps)), tag  # the killed run's steps after its checkpoint are gone
    assert [v for _, v in events["validation/accuracy"]] == pytest.approx(
        [r["validation:accuracy"] for r in records(killed)]
    )

    # SageMaker restarts in a new container: only the checkpoints come back
    fresh = shutil.copytree(whole.root, tmp_path / "fresh")
    expected = records(whole.root)
    shutil.rmtree(fresh / "output")
    rerun = train(fresh, "--algorithm", "image-classification")
    assert rerun.code == 0, rerun.out[-2000:]
    assert (
        "Resuming from checkpoint" in rerun.out and "Train-accuracy" not in rerun.out
    )  # nothing left to train
    assert records(fresh) == expected
    assert (fresh / "output/data/training-curves.png").is_file()
