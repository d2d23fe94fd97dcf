"""The built-in segmenter's log lines (note the space before the final '.'), and the
MetricDefinitions whose regexes parse them. Users scrape these lines: keep them exact. No framework
import here."""

from __future__ import annotations

from sagemaker_cv.contract.logs import NUM


def quality_line(host: str, epoch: int, split: str, name: str, value: float) -> str:
    return f"#quality_metric. host: {host}, epoch: {epoch}, {split} {name}: {value} ."


def throughput_line(host: str, epoch: int, split: str, value: float) -> str:
    return f"#throughput_metric. host: {host}, epoch: {epoch}, {split} throughput: {value} samples/sec."


METRIC_DEFINITIONS = (
    ("train:loss", rf"#quality_metric\. host: \S+, epoch: \d+, train loss: {NUM} \."),
    (
        "train:throughput",
        rf"#throughput_metric\. host: \S+, epoch: \d+, train throughput: {NUM} samples/sec\.",
    ),
    (
        "validation:pixel_accuracy",
        rf"#quality_metric\. host: \S+, epoch: \d+, validation pixel_accuracy: {NUM} \.",
    ),
    ("validation:mIOU", rf"#quality_metric\. host: \S+, epoch: \d+, validation mIOU: {NUM} \."),
    (
        "validation:throughput",
        rf"#throughput_metric\. host: \S+, epoch: \d+, validation throughput: {NUM} samples/sec\.",
    ),
)
OBJECTIVES = ("validation:mIOU", "validation:pixel_accuracy")
