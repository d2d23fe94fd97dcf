"""The built-in SSD detector's log lines, and the MetricDefinitions whose regexes parse them.
Users scrape these lines: keep them exact. No framework import here."""

from __future__ import annotations

from sagemaker_cv.contract.logs import NUM


def loss_line(host: str, epoch: int, batch: int, name: str, value: float) -> str:
    return f"#quality_metric: host={host}, epoch={epoch}, batch={batch} train {name} <loss>=({value})"


def map_line(host: str, epoch: int, value: float) -> str:
    return f"#quality_metric: host={host}, epoch={epoch}, validation mAP <score>=({value})"


def progress_line(epoch: int, batches: int, examples: int, speed: float, elapsed: str) -> str:
    return (
        f"Epoch: {epoch:4d}, batches: {batches:6d}, num_examples: {examples:6d}, "
        f"{speed:.1f} samples/sec, epoch time so far: {elapsed}"
    )


METRIC_DEFINITIONS = (
    (
        "train:cross_entropy",
        rf"#quality_metric: host=\S+, epoch=\d+, batch=\d+ train cross_entropy <loss>=\({NUM}\)",
    ),
    (
        "train:smooth_l1",
        rf"#quality_metric: host=\S+, epoch=\d+, batch=\d+ train smooth_l1 <loss>=\({NUM}\)",
    ),
    ("train:throughput", rf"Epoch: +\d+, batches: +\d+, num_examples: +\d+, {NUM} samples/sec"),
    ("validation:mAP", rf"#quality_metric: host=\S+, epoch=\d+, validation mAP <score>=\({NUM}\)"),
)
OBJECTIVES = ("validation:mAP",)
