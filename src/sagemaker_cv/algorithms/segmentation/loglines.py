"""The built-in segmenter's log lines (note the space before the final '.'), and the
MetricDefinitions whose regexes parse them. Users scrape these lines: keep them exact. No framework
import here."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sagemaker_cv.contract import logs
from sagemaker_cv.contract.logs import NUM
from sagemaker_cv.training.task import LogLines, Metrics

log = logs.get("segmentation")


def quality_line(host: str, epoch: int, split: str, name: str, value: float) -> str:
    return f"#quality_metric. host: {host}, epoch: {epoch}, {split} {name}: {value} ."


def throughput_line(host: str, epoch: int, split: str, value: float) -> str:
    return f"#throughput_metric. host: {host}, epoch: {epoch}, {split} throughput: {value} samples/sec."


def progress_line(epoch: int, iterations: int, speed: float, learning_rate: float | None = None) -> str:
    """Every logging interval; validation passes print it without the learning rate."""
    text = f"#progress_notice. epoch: {epoch}, iterations: {iterations} speed: {speed} samples/sec"
    return text if learning_rate is None else f"{text} learning_rate: {learning_rate:f}"


def progress_metric_line(host: str, epoch: int, epochs: int) -> str:
    return f"#progress_metric: host={host}, completed {int((epoch + 1) * 100 / epochs)} % of epochs"


def lr_setup_line(iters_per_epoch: int, epochs: int) -> str:
    return f"LRScheduler setup: iters per epoch: {iters_per_epoch}, num_epochs {epochs}"


def label_map_line(split: str, spec: dict) -> str:
    return f"#label_map {split} :{spec}"


def serializing_line(path: Path | str) -> str:
    return f"Serializing model to {path}"


class SegmentationLogLines(LogLines):
    """The built-in's lines for one host. `learning_rate` reads the optimizer's current rate."""

    def __init__(self, host: str, learning_rate: Callable[[], float]):
        self.host, self.learning_rate = host, learning_rate

    def batch(self, epoch: int, batch: int, speed: float, metrics: Metrics) -> None:
        log.info(progress_line(epoch, batch, speed, self.learning_rate()))

    def train_epoch(self, epoch: int, metrics: Metrics, seconds: float, samples: int) -> None:
        for name, value in metrics:
            log.info(quality_line(self.host, epoch, "train", name, value))
        log.info(throughput_line(self.host, epoch, "train", samples / max(seconds, 1e-9)))

    def validation(self, epoch: int, metrics: Metrics) -> None:
        """pixel_accuracy and mIOU as quality lines; `throughput` (images/s) as the throughput line."""
        for name, value in metrics:
            if name == "throughput":
                log.info(throughput_line(self.host, epoch, "validation", value))
            else:
                log.info(quality_line(self.host, epoch, "validation", name, value))

    def validation_progress(self, epoch: int, iterations: int, speed: float) -> None:
        log.info(progress_line(epoch, iterations, speed))

    def new_best(self, epoch: int, name: str, score: float) -> None:
        log.info("Best validation %s so far: %s (epoch %d)", name, score, epoch)

    def saved(self, path: Path) -> None:
        log.info(serializing_line(path))

    def saved_files(self, files: list[Path]) -> None:
        """One line per checkpoint, naming model_algo-1 (the file users load), as the built-in."""
        for path in files:
            if path.name == "model_algo-1":
                self.saved(path)

    def epoch_end(self, epoch: int, epochs: int) -> None:
        log.info(progress_metric_line(self.host, epoch, epochs))


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
