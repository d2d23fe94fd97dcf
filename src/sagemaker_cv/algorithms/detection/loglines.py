"""The built-in SSD detector's log lines, and the MetricDefinitions whose regexes parse them.
Users scrape these lines: keep them exact. No framework import here."""

from __future__ import annotations

from pathlib import Path

from sagemaker_cv.contract import logs
from sagemaker_cv.contract.logs import NUM
from sagemaker_cv.training.task import LogLines, Metrics

log = logs.get("detection")


def loss_line(host: str, epoch: int, batch: int, name: str, value: float) -> str:
    return f"#quality_metric: host={host}, epoch={epoch}, batch={batch} train {name} <loss>=({value})"


def map_line(host: str, epoch: int, value: float) -> str:
    return f"#quality_metric: host={host}, epoch={epoch}, validation mAP <score>=({value})"


def elapsed_text(seconds: float) -> str:
    """`0:00:22.067521`, as Python prints a timedelta (always with microseconds), right-aligned to
    15 characters: the built-in's line has two spaces before an elapsed time under ten hours."""
    micros = int(round(seconds * 1e6))
    whole, micros = divmod(micros, 1_000_000)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}.{micros:06d}".rjust(15)


def progress_line(epoch: int, batches: int, examples: int, speed: float, elapsed: str) -> str:
    return (
        f"Epoch: {epoch:4d}, batches: {batches:6d}, num_examples: {examples:6d}, "
        f"{speed:.1f} samples/sec, epoch time so far: {elapsed}"
    )


def epochs_done_line(host: str, epoch: int, epochs: int) -> str:
    return f"#progress_metric: host={host}, completed {100.0 * (epoch + 1) / epochs} % of epochs"


def best_line(score: float) -> str:
    return f"Updating the best model with validation-mAP={score}"


class DetectionLogLines(LogLines):
    """Every batch line carries the epoch's examples and elapsed time. The loop hands over only the
    speed since the previous line, so the elapsed time is summed from the intervals: an interval of
    k batches of `batch_size` at `speed` samples/s took k * batch_size / speed seconds."""

    def __init__(self, host: str, batch_size: int):
        self.host, self.batch_size = host, batch_size
        self._epoch, self._batch, self._seconds = -1, 0, 0.0

    def batch(self, epoch: int, batch: int, speed: float, metrics: Metrics) -> None:
        if epoch != self._epoch:
            self._epoch, self._batch, self._seconds = epoch, 0, 0.0
        self._seconds += (batch - self._batch) * self.batch_size / max(speed, 1e-9)
        self._batch = batch
        examples = batch * self.batch_size
        log.info(progress_line(epoch, batch, examples, speed, elapsed_text(self._seconds)))

    def train_epoch(self, epoch: int, metrics: Metrics, seconds: float, samples: int) -> None:
        batches = samples // self.batch_size
        for name, value in metrics:
            log.info(loss_line(self.host, epoch, batches, name, value))
        log.info("Round of batches complete")

    def validation(self, epoch: int, metrics: Metrics) -> None:
        log.info("Updated the metrics")
        log.info(map_line(self.host, epoch, dict(metrics)["mAP"]))

    def new_best(self, epoch: int, name: str, score: float) -> None:
        log.info(best_line(score))

    def saved(self, path: Path) -> None:
        log.info('Saved checkpoint to "%s"', path)

    def epoch_end(self, epoch: int, epochs: int) -> None:
        log.info(epochs_done_line(self.host, epoch, epochs))


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
    ("train:progress", rf"#progress_metric: host=\S+, completed {NUM} % of epochs"),
    ("validation:mAP", rf"#quality_metric: host=\S+, epoch=\d+, validation mAP <score>=\({NUM}\)"),
)
OBJECTIVES = ("validation:mAP",)
