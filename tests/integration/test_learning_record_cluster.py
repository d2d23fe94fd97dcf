"""Tier: cluster (two hosts on loopback, ~1 min). Several hosts never write the learning record
twice: only the primary writes metrics.jsonl, the curves and the TensorBoard events, and its file
is what the published regexes read from its log."""

from __future__ import annotations

import json

import pytest
from test_distributed_training import cluster  # noqa: F401 - the fixture
from test_learning_record import cloudwatch_view

from sagemaker_cv.algorithms import REGISTRY

pytestmark = pytest.mark.cluster
event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


def test_only_the_primary_host_writes_the_learning_record(cluster):  # noqa: F811
    c = cluster(2, hyperparameters={"lr_scheduler_step": "1", "lr_scheduler_factor": "0.5"})
    c.start()
    codes = c.wait(300)
    assert codes == {"algo-1": 0, "algo-2": 0}, c.tail("algo-1") + c.tail("algo-2")
    primary, other = c.roots
    records = [json.loads(line) for line in (primary / "output/data/metrics.jsonl").read_text().splitlines()]
    assert records == cloudwatch_view(c.log("algo-1"), REGISTRY["image-classification"].metric_definitions)
    assert [r["epoch"] for r in records] == [0, 1]
    assert (primary / "output/data/training-curves.png").is_file()
    assert not any((other / "output").rglob("*.*")), sorted(
        (other / "output").rglob("*")
    )  # (empty output/data: the tree's)
    accumulator = event_accumulator.EventAccumulator(str(primary / "output/tensorboard"))
    accumulator.Reload()
    # dist_sync updates on the servers; the logged rate still follows the schedule: the demo's 0.05,
    # halved after epoch 0 (3 updates per epoch)
    rates = [(e.step, e.value) for e in accumulator.Scalars("step/learning_rate")]
    assert rates == [(s, pytest.approx(0.05 if s <= 3 else 0.025)) for s in range(1, 7)]
