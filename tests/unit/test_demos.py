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


#: a job that logs an epoch's validation (so the best score is found) and then dies
JOB_THAT_DIES = "echo '[...] Epoch[0] Validation-accuracy=0.500000'; echo 'the job died' >&2; exit 1"


def test_a_failing_job_fails_make_demo(tmp_path):
    """The Makefile's recipe pipes the job through `tee`; without pipefail a dead job would end
    `make demo` with status 0. The job here is a stand-in that validates an epoch and dies (the
    data are written for real), run from a scratch directory so that no one's demo/ is removed."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    for name, body in (
        ("python", f'exec {sys.executable} "$@"'),
        ("sagemaker-cv", JOB_THAT_DIES),
    ):
        (venv / "bin" / name).write_text(f"#!/bin/sh\n{body}\n")
        (venv / "bin" / name).chmod(0o755)
    (tmp_path / "pyproject.toml").symlink_to(repo / "pyproject.toml")
    (venv / ".installed").touch()  # newer than pyproject.toml: make installs nothing
    proc = subprocess.run(
        [
            "make",
            "-f",
            str(repo / "Makefile"),
            "-I",
            str(repo),
            "demo",
            f"VENV={venv}",
            f"PYTHON={sys.executable}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(repo / "src")},
        timeout=300,
    )
    assert proc.returncode != 0, proc.stdout[-2000:]
    assert "the job died" in proc.stderr and "Model archive" not in proc.stdout
    assert (tmp_path / "demo" / "ml" / "input" / "config" / "hyperparameters.json").is_file()
