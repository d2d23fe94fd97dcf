"""The built-in image classifier's log lines (MXNet Module.fit / Speedometer formats), one
formatter per line, and the MetricDefinitions whose regexes parse them. Users scrape these lines:
keep them exact. No framework import here."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from sagemaker_cv.contract import logs
from sagemaker_cv.contract.logs import NUM, TAB
from sagemaker_cv.training.task import LogLines, Metrics

log = logs.get("classification")


def batch_line(epoch: int, batch: int, speed: float, metrics: Iterable[tuple[str, float]]) -> str:
    text = f"Epoch[{epoch}] Batch [{batch}]\tSpeed: {speed:.3f} samples/sec"
    return text + "".join(f"\t{name}={value:f}" for name, value in metrics)


def epoch_metric_line(epoch: int, split: str, name: str, value: float) -> str:
    """`Epoch[0] Train-accuracy=0.025911`, `Epoch[0] Validation-accuracy=0.056723`."""
    return f"Epoch[{epoch}] {split}-{name}={value:f}"


def time_cost_line(epoch: int, seconds: float) -> str:
    return f"Epoch[{epoch}] Time cost={seconds:.3f}"


def saved_checkpoint_line(path: str) -> str:
    return f'Saved checkpoint to "{path}"'


def eta_line(epoch: int, remaining_epochs: int, seconds: float) -> str:
    hours, rest = divmod(int(round(seconds)), 3600)
    minutes, secs = divmod(rest, 60)
    return (
        f"Epoch[{epoch}] Estimated time remaining for the job: {hours}:{minutes:02d}:{secs:02d} "
        f"({remaining_epochs} epochs left)"
    )


class ClassificationLogLines(LogLines):
    def batch(self, epoch: int, batch: int, speed: float, metrics: Metrics) -> None:
        log.info(batch_line(epoch, batch, speed, metrics))

    def train_epoch(self, epoch: int, metrics: Metrics, seconds: float, samples: int) -> None:
        for name, value in metrics:
            log.info(epoch_metric_line(epoch, "Train", name, value))
        log.info(time_cost_line(epoch, seconds))

    def validation(self, epoch: int, metrics: Metrics) -> None:
        for name, value in metrics:
            log.info(epoch_metric_line(epoch, "Validation", name, value))

    def new_best(self, epoch: int, name: str, score: float) -> None:
        log.info("Storing the best model with validation %s: %f", name, score)

    def saved(self, path: Path) -> None:
        log.info(saved_checkpoint_line(str(path)))

    def eta(self, epoch: int, remaining_epochs: int, seconds: float) -> None:
        log.info(eta_line(epoch, remaining_epochs, seconds))


_EPOCH = r"Epoch\[\d+\]"
_BATCH = rf"{_EPOCH} Batch \[\d+\]{TAB}Speed: {NUM} samples/sec"

METRIC_DEFINITIONS = (
    ("train:accuracy", rf"{_EPOCH} Batch \[\d+\]{TAB}Speed: [0-9.]+ samples/sec{TAB}accuracy={NUM}"),
    ("train:top_k_accuracy", rf"{_EPOCH} Batch \[\d+\]{TAB}.*top_k_accuracy_\d+={NUM}"),
    ("train:throughput", _BATCH),
    ("train:accuracy:epoch", rf"{_EPOCH} Train-accuracy={NUM}"),
    ("train:top_k_accuracy:epoch", rf"{_EPOCH} Train-top_k_accuracy_\d+={NUM}"),
    ("train:loss:epoch", rf"{_EPOCH} Train-loss={NUM}"),
    ("validation:accuracy", rf"{_EPOCH} Validation-accuracy={NUM}"),
    ("validation:accuracy:epoch", rf"{_EPOCH} Validation-accuracy={NUM}"),
    ("validation:top_k_accuracy:epoch", rf"{_EPOCH} Validation-top_k_accuracy_\d+={NUM}"),
)
OBJECTIVES = ("validation:accuracy",)
