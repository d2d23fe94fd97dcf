"""`make demo` reads the registry (tools.demos): every algorithm names an example writer whose
`CHANCE` exists, an unknown name is refused with the list, and the best score comes from the
log with the published objective's regex. Tier: fast."""

from __future__ import annotations

import importlib

import pytest

from sagemaker_cv import algorithms
from sagemaker_cv.tools import demos


@pytest.mark.parametrize("name", algorithms.NAMES)
def test_every_algorithm_has_an_example_writer(name):
    module = importlib.import_module(algorithms.get(name).example)
    assert callable(module.main) and module.CHANCE


def test_an_unknown_algorithm_is_refused_with_the_valid_names(capsys):
    assert demos.main(["check", "--algorithm", "image-classifier"]) == 2
    assert capsys.readouterr().err.strip() == (
        "make demo: ALGORITHM=image-classifier is not one of: " + " ".join(algorithms.NAMES)
    )


@pytest.mark.parametrize(
    ("name", "log", "line"),
    [
        (
            "image-classification",
            "[...] Epoch[0] Validation-accuracy=0.500000\n[...] Epoch[1] Validation-accuracy=0.812500\n",
            "Best validation accuracy: 0.8125 (3 classes: chance is 0.33)",
        ),
        (
            "semantic-segmentation",
            "#quality_metric. host: algo-1, epoch: 0, validation mIOU: 0.61 .\n",
            "Best validation mIOU: 0.61 (all background scores about 0.27)",
        ),
    ],
)
def test_the_best_score_is_read_as_sagemaker_reads_it(name, log, line):
    assert demos.best_line(algorithms.get(name), log) == line
    assert demos.best_line(algorithms.get(name), "the job died before validating\n") is None
