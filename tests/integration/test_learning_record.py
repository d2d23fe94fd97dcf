"""Tier: fast (reads the session's reference jobs, tests/integration/trained.py; trains nothing of
its own). Each algorithm's learning record: metrics.jsonl holds what the published
MetricDefinitions read from the job's real log, epoch by epoch; the curves picture; TensorBoard
events read back by TensorBoard's reader."""

from __future__ import annotations

import json
import re

import pytest

from sagemaker_cv.algorithms import NAMES, REGISTRY

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")

# The epoch a line is about: Epoch[3], epoch=3, "epoch: 3", "Epoch:    3"; a line without one
# (`#progress_metric: ... completed 50 % of epochs`) belongs to the epoch of the lines before it.
EPOCH = re.compile(r"[Ee]poch(?:\[|=|:) *(\d+)")


def cloudwatch_view(log: str, definitions) -> list[dict]:
    """What SageMaker extracts from the log (the first group of each regex on each line), per epoch."""
    epochs: dict[int, dict[str, list[float]]] = {}
    epoch = None
    for line in log.splitlines():
        found = EPOCH.search(line)
        epoch = int(found.group(1)) if found else epoch
        for name, regex in definitions:
            match = re.search(regex, line)
            if match:
                epochs.setdefault(epoch, {}).setdefault(name, []).append(float(match.group(1)))
    return [
        {"epoch": e, **{n: sum(v) / len(v) for n, v in readings.items()}}
        for e, readings in sorted(epochs.items())
    ]


@pytest.mark.fast
@pytest.mark.parametrize("algorithm", NAMES)
def test_the_metrics_file_holds_what_cloudwatch_reads_from_the_log(trained, algorithm):
    job = trained(algorithm)
    definitions = REGISTRY[algorithm].metric_definitions
    records = [json.loads(line) for line in (job.root / "output/data/metrics.jsonl").read_text().splitlines()]
    assert records == cloudwatch_view(job.run.out, definitions)
    assert [r["epoch"] for r in records] == [0, 1]
    # every metric the job logs is there, under its published name
    assert all(set(r) == {"epoch", *(n for n, _ in definitions if n in records[0])} for r in records)
    assert sum(len(r) for r in records) > 2 * 3


@pytest.mark.fast
@pytest.mark.parametrize("algorithm", NAMES)
def test_the_curves_and_the_tensorboard_events_follow_the_metrics(trained, algorithm):
    job = trained(algorithm)
    picture = (job.root / "output/data/training-curves.png").read_bytes()
    assert picture[:8] == b"\x89PNG\r\n\x1a\n" and len(picture) < 100_000
    records = [json.loads(line) for line in (job.root / "output/data/metrics.jsonl").read_text().splitlines()]
    accumulator = event_accumulator.EventAccumulator(str(job.root / "output/tensorboard"))
    accumulator.Reload()
    tags = set(accumulator.Tags()["scalars"])
    for record in records:
        for name, value in record.items():
            if name != "epoch":
                logged = [e.value for e in accumulator.Scalars(name.replace(":", "/"))]
                assert logged[record["epoch"]] == pytest.approx(value, rel=1e-6)  # stored as float32
    assert [e.value for e in accumulator.Scalars("epoch/epoch")] == [0.0, 1.0]
    assert {
        "epoch/learning_rate",
        "epoch/images_per_sec",
        "step/images_per_sec",
        "step/learning_rate",
    } <= tags
    # the training loss at the log interval, where the loss is one number (detection logs its two parts)
    per_step = {"step/cross_entropy", "step/smooth_l1"} if algorithm == "object-detection" else {"step/loss"}
    assert per_step <= tags
    steps = [e.step for e in accumulator.Scalars(sorted(per_step)[0])]
    assert steps == sorted(steps) and len(steps) >= 2
