"""The log formatters print the built-in's lines byte for byte, and the MetricDefinitions parse
them both raw (TAB) and as CloudWatch stores them (#011)."""

from __future__ import annotations

import re

from sagemaker_cv import algorithms
from sagemaker_cv.algorithms.classification import loglines as ic
from sagemaker_cv.algorithms.detection import loglines as od_lines
from sagemaker_cv.algorithms.segmentation import loglines as ss_lines
from sagemaker_cv.tools.spec import metric_definitions, objective_metrics


def test_image_classification_lines_match_the_builtin():
    line = ic.batch_line(0, 20, 114.1664, [("accuracy", 0.00558), ("top_k_accuracy_2", 0.011161)])
    assert (
        line
        == "Epoch[0] Batch [20]\tSpeed: 114.166 samples/sec\taccuracy=0.005580\ttop_k_accuracy_2=0.011161"
    )
    assert ic.epoch_metric_line(0, "Train", "accuracy", 0.025911) == "Epoch[0] Train-accuracy=0.025911"
    assert (
        ic.epoch_metric_line(0, "Validation", "accuracy", 0.056723) == "Epoch[0] Validation-accuracy=0.056723"
    )
    assert ic.time_cost_line(0, 102.2141) == "Epoch[0] Time cost=102.214"
    assert (
        ic.saved_checkpoint_line("/opt/ml/model/image-classification-0001.params")
        == 'Saved checkpoint to "/opt/ml/model/image-classification-0001.params"'
    )


def _find(definitions, name, text):
    regex = {d["Name"]: d["Regex"] for d in definitions}[name]
    match = re.search(regex, text)
    return match and float(match.group(1))


def test_classification_regexes_on_raw_and_cloudwatch_text():
    defs = metric_definitions(algorithms.get("image-classification"))
    raw = "\n".join(
        [
            "[06/17/2021 23:33:27 INFO 1] "
            + ic.batch_line(0, 20, 114.166, [("accuracy", 0.25), ("top_k_accuracy_2", 0.5)]),
            "[06/17/2021 23:33:27 INFO 1] " + ic.epoch_metric_line(0, "Train", "accuracy", 0.3),
            "[06/17/2021 23:33:27 INFO 1] " + ic.epoch_metric_line(0, "Train", "top_k_accuracy_2", 0.6),
            "[06/17/2021 23:33:27 INFO 1] " + ic.epoch_metric_line(0, "Train", "loss", 1.5),
            "[06/17/2021 23:33:27 INFO 1] " + ic.epoch_metric_line(0, "Validation", "accuracy", 0.4),
            "[06/17/2021 23:33:27 INFO 1] " + ic.epoch_metric_line(0, "Validation", "top_k_accuracy_2", 0.7),
        ]
    )
    for text in (raw, raw.replace("\t", "#011")):
        assert _find(defs, "train:accuracy", text) == 0.25
        assert _find(defs, "train:top_k_accuracy", text) == 0.5
        assert _find(defs, "train:throughput", text) == 114.166
        assert _find(defs, "train:accuracy:epoch", text) == 0.3
        assert _find(defs, "train:top_k_accuracy:epoch", text) == 0.6
        assert _find(defs, "train:loss:epoch", text) == 1.5
        assert _find(defs, "validation:accuracy", text) == 0.4
        assert _find(defs, "validation:top_k_accuracy:epoch", text) == 0.7


def test_detection_and_segmentation_regexes_parse_their_formatters():
    od = metric_definitions(algorithms.get("object-detection"))
    text = "\n".join(
        [
            od_lines.loss_line("algo-1", 0, 1035, "cross_entropy", 1.1592809385995073),
            od_lines.loss_line("algo-1", 0, 1035, "smooth_l1", 0.5428036072072824),
            od_lines.map_line("algo-1", 0, 0.19905460940354514),
            od_lines.progress_line(0, 100, 1600, 72.5, "0:00:22.067521"),
        ]
    )
    assert od_lines.progress_line(0, 100, 1600, 72.5, "0:00:22.067521").startswith(
        "Epoch:    0, batches:    100, num_examples:   1600, 72.5 samples/sec"
    )
    assert _find(od, "train:cross_entropy", text) == 1.1592809385995073
    assert _find(od, "train:smooth_l1", text) == 0.5428036072072824
    assert _find(od, "validation:mAP", text) == 0.19905460940354514
    assert _find(od, "train:throughput", text) == 72.5
    ss = metric_definitions(algorithms.get("semantic-segmentation"))
    line = ss_lines.quality_line("algo-1", 0, "validation", "mIOU", 0.5063982026717044)
    assert line == "#quality_metric. host: algo-1, epoch: 0, validation mIOU: 0.5063982026717044 ."
    text = "\n".join(
        [
            ss_lines.quality_line("algo-1", 0, "train", "loss", 1.475714725452465),
            line,
            ss_lines.quality_line("algo-1", 0, "validation", "pixel_accuracy", 0.8472626958559429),
            ss_lines.throughput_line("algo-1", 0, "train", 55.0439202038),
            ss_lines.throughput_line("algo-1", 0, "validation", 36.7295854993),
        ]
    )
    assert _find(ss, "train:loss", text) == 1.475714725452465
    assert _find(ss, "validation:mIOU", text) == 0.5063982026717044
    assert _find(ss, "validation:pixel_accuracy", text) == 0.8472626958559429
    assert _find(ss, "train:throughput", text) == 55.0439202038
    assert _find(ss, "validation:throughput", text) == 36.7295854993


def test_definitions_fit_sagemaker_limits_and_objectives_are_defined():
    for algorithm in algorithms.NAMES:
        defs = metric_definitions(algorithms.get(algorithm))
        assert len(defs) <= 40
        names = {d["Name"] for d in defs}
        for d in defs:
            assert 1 <= len(d["Name"]) <= 255 and 1 <= len(d["Regex"]) <= 500
            re.compile(d["Regex"])
        for objective in objective_metrics(algorithms.get(algorithm)):
            assert objective["MetricName"] in names and objective["Type"] == "Maximize"
