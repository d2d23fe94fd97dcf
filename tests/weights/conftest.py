"""Weight conversions checked against the source frameworks (`make test-weights`).

The tests run in .venv (MXNet, GluonCV); the source models are built by tests/weights/reference.py
in a PyTorch environment of their own ($SAGEMAKER_CV_TORCH_PYTHON, made by `make test-weights`),
since gluoncv 0.10.5 refuses to import next to torch >= 2. Nothing is downloaded.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from weights_helpers import MEASURED

REFERENCE = Path(__file__).with_name("reference.py")


@pytest.fixture(scope="session")
def torch_python() -> str:
    python = os.environ.get("SAGEMAKER_CV_TORCH_PYTHON", ".venv-weights/bin/python")
    if not Path(python).is_file():
        pytest.fail(f"no PyTorch test environment at {python}: run `make test-weights`")
    return python


@pytest.fixture
def reference(torch_python, tmp_path):
    """Factory: (library, model, formats) -> a directory with the model's random weights (MODEL.<format>),
    an input batch and its outputs, made in the source framework. Deleted after the test (VGG is
    0.5 GB a format)."""

    def make(library: str, model: str, formats: tuple[str, ...] = ("safetensors",)) -> Path:
        out = tmp_path / model
        cmd = [torch_python, str(REFERENCE), library, model, str(out), ",".join(formats)]
        # The torch environment must not see .venv's packages (or ours) through PYTHONPATH.
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return out

    yield make
    shutil.rmtree(tmp_path, ignore_errors=True)


def pytest_terminal_summary(terminalreporter):
    if MEASURED:
        terminalreporter.section("max abs difference against the source framework (float32)")
        for name, diff in MEASURED.items():
            terminalreporter.write_line(f"{name:45s} {diff:.2e}")
