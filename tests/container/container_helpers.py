"""Helpers shared by the container tests (a uniquely named module: tests/ has no packages)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CPU_TAG = "sagemaker-cv-test:image-classification-cpu"
GPU_TAG = "sagemaker-cv-test:image-classification-gpu"
BUILD_TIMEOUT = 40 * 60  # a cold GPU build downloads ~3 GB of wheels

# Durations and image sizes, printed at the end of the session (CI's log keeps the figures).
REPORT: dict[str, str] = {}


def record_seconds(name: str, seconds: float) -> None:
    REPORT[name] = f"{seconds:.1f} s"


def docker(*args: str, timeout: float = 600, check: bool = False) -> subprocess.CompletedProcess:
    """Run the docker CLI; stdout and stderr together in .stdout (the container's whole log)."""
    result = subprocess.run(
        ["docker", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout
    )
    if check and result.returncode != 0:
        pytest.fail(f"docker {' '.join(args[:3])} ... exited {result.returncode}:\n{result.stdout[-4000:]}")
    return result


def make_tree(root: Path, **hyperparameters: str) -> dict:
    """A tiny learnable image-classification /opt/ml tree; returns its hyperparameters."""
    from sagemaker_cv.tools.demo import write_example_tree

    overrides = {"epochs": "2", **hyperparameters}
    return write_example_tree(root, image_size=32, per_class=16, val_per_class=6, hyperparameters=overrides)


def read_json(path: Path):
    return json.loads(path.read_text())
