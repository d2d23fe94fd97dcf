"""The built-ins' log lines, one formatter per line, and the SageMaker MetricDefinitions whose
regexes parse them. Users scrape these lines, so they are an interface: keep them exact.

CloudWatch stores a TAB as `#011`; the regexes accept both, so they work on CloudWatch text and on
raw container output alike. No framework import here.
"""

from __future__ import annotations

from collections.abc import Iterable

TAB = r"(?:\t|#011)"
NUM = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"


# ---- image classification (MXNet Module.fit / Speedometer formats) ---------------------------


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


# ---- object detection (built-in SSD formats) -------------------------------------------------


def od_loss_line(host: str, epoch: int, batch: int, name: str, value: float) -> str:
    return f"#quality_metric: host={host}, epoch={epoch}, batch={batch} train {name} <loss>=({value})"


def od_map_line(host: str, epoch: int, value: float) -> str:
    return f"#quality_metric: host={host}, epoch={epoch}, validation mAP <score>=({value})"


def od_progress_line(host: str, epoch: int, batches: int, examples: int, speed: float, elapsed: str) -> str:
    return (
        f"Epoch: {epoch:4d}, batches: {batches:6d}, num_examples: {examples:6d}, "
        f"{speed:.1f} samples/sec, epoch time so far: {elapsed}"
    )


# ---- semantic segmentation (built-in formats; note the space before the final '.') -----------


def ss_quality_line(host: str, epoch: int, split: str, name: str, value: float) -> str:
    return f"#quality_metric. host: {host}, epoch: {epoch}, {split} {name}: {value} ."


def ss_throughput_line(host: str, epoch: int, split: str, value: float) -> str:
    return f"#throughput_metric. host: {host}, epoch: {epoch}, {split} throughput: {value} samples/sec."


# ---- MetricDefinitions -----------------------------------------------------------------------

_EPOCH = r"Epoch\[\d+\]"
_BATCH = rf"{_EPOCH} Batch \[\d+\]{TAB}Speed: {NUM} samples/sec"

_DEFINITIONS = {
    "image-classification": [
        ("train:accuracy", rf"{_EPOCH} Batch \[\d+\]{TAB}Speed: [0-9.]+ samples/sec{TAB}accuracy={NUM}"),
        ("train:top_k_accuracy", rf"{_EPOCH} Batch \[\d+\]{TAB}.*top_k_accuracy_\d+={NUM}"),
        ("train:throughput", _BATCH),
        ("train:accuracy:epoch", rf"{_EPOCH} Train-accuracy={NUM}"),
        ("train:top_k_accuracy:epoch", rf"{_EPOCH} Train-top_k_accuracy_\d+={NUM}"),
        ("train:loss:epoch", rf"{_EPOCH} Train-loss={NUM}"),
        ("validation:accuracy", rf"{_EPOCH} Validation-accuracy={NUM}"),
        ("validation:accuracy:epoch", rf"{_EPOCH} Validation-accuracy={NUM}"),
        ("validation:top_k_accuracy:epoch", rf"{_EPOCH} Validation-top_k_accuracy_\d+={NUM}"),
    ],
    "object-detection": [
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
    ],
    "semantic-segmentation": [
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
    ],
}

_OBJECTIVES = {
    "image-classification": ["validation:accuracy"],
    "object-detection": ["validation:mAP"],
    "semantic-segmentation": ["validation:mIOU", "validation:pixel_accuracy"],
}


def metric_definitions(algorithm: str) -> list[dict[str, str]]:
    """SageMaker MetricDefinitions for a training job or an algorithm specification."""
    return [{"Name": name, "Regex": regex} for name, regex in _DEFINITIONS[algorithm]]


def objective_metrics(algorithm: str) -> list[dict[str, str]]:
    """The metrics a tuning job may optimise (all are maximised)."""
    return [{"Type": "Maximize", "MetricName": name} for name in _OBJECTIVES[algorithm]]
