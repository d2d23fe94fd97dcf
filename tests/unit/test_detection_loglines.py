"""The detector's log lines, byte for byte as the built-in prints them, and their bookkeeping."""

from __future__ import annotations

import logging
import re

import pytest

from sagemaker_cv import algorithms
from sagemaker_cv.algorithms.detection import loglines as od
from sagemaker_cv.tools.spec import metric_definitions


def test_lines_match_the_builtin():
    assert (
        od.progress_line(0, 100, 1600, 72.5, od.elapsed_text(22.067521))
        == "Epoch:    0, batches:    100, num_examples:   1600, 72.5 samples/sec, epoch time so far:  0:00:22.067521"
    )
    assert od.elapsed_text(36000) == "10:00:00.000000"
    assert (
        od.loss_line("algo-1", 0, 1035, "cross_entropy", 1.1592809385995073)
        == "#quality_metric: host=algo-1, epoch=0, batch=1035 train cross_entropy <loss>=(1.1592809385995073)"
    )
    assert (
        od.map_line("algo-1", 0, 0.19905460940354514)
        == "#quality_metric: host=algo-1, epoch=0, validation mAP <score>=(0.19905460940354514)"
    )
    assert (
        od.best_line(0.19905460940354514) == "Updating the best model with validation-mAP=0.19905460940354514"
    )
    assert od.epochs_done_line("algo-1", 0, 5) == "#progress_metric: host=algo-1, completed 20.0 % of epochs"


def test_progress_metric_regex_parses_it():
    defs = {d["Name"]: d["Regex"] for d in metric_definitions(algorithms.get("object-detection"))}
    assert float(re.search(defs["train:progress"], od.epochs_done_line("algo-1", 2, 3)).group(1)) == 100.0


@pytest.fixture
def lines(caplog):
    caplog.set_level(logging.INFO, logger="sagemaker_cv.detection")
    logger = logging.getLogger("sagemaker_cv")
    propagate, logger.propagate = logger.propagate, True
    yield caplog
    logger.propagate = propagate


def test_batch_lines_add_up_the_epoch_time_from_the_intervals(lines):
    log = od.DetectionLogLines("algo-2", batch_size=16)
    log.batch(0, 20, 32.0, [])  # 20 batches of 16 at 32/s: 10 s
    log.batch(0, 40, 64.0, [])  # 5 s more
    log.batch(1, 20, 16.0, [])  # a new epoch starts from zero: 20 s
    messages = [r.getMessage() for r in lines.records]
    assert messages == [
        "Epoch:    0, batches:     20, num_examples:    320, 32.0 samples/sec, epoch time so far:  0:00:10.000000",
        "Epoch:    0, batches:     40, num_examples:    640, 64.0 samples/sec, epoch time so far:  0:00:15.000000",
        "Epoch:    1, batches:     20, num_examples:    320, 16.0 samples/sec, epoch time so far:  0:00:20.000000",
    ]


def test_epoch_lines_in_the_builtins_order(lines):
    log = od.DetectionLogLines("algo-1", batch_size=8)
    log.train_epoch(3, [("cross_entropy", 1.5), ("smooth_l1", 0.25)], 12.0, 8 * 7)
    log.validation(3, [("mAP", 0.5)])
    log.new_best(3, "mAP", 0.5)
    log.epoch_end(3, 10)
    assert [r.getMessage() for r in lines.records] == [
        "#quality_metric: host=algo-1, epoch=3, batch=7 train cross_entropy <loss>=(1.5)",
        "#quality_metric: host=algo-1, epoch=3, batch=7 train smooth_l1 <loss>=(0.25)",
        "Round of batches complete",
        "Updated the metrics",
        "#quality_metric: host=algo-1, epoch=3, validation mAP <score>=(0.5)",
        "Updating the best model with validation-mAP=0.5",
        "#progress_metric: host=algo-1, completed 40.0 % of epochs",
    ]
