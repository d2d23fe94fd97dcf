"""Builds the image once per session and runs it the way SageMaker does.

Needs a Docker engine (`docker info` answers) and BASE_IMAGE, a Python 3.11 slim image the engine
has or can pull (`make test-container` passes it). Without either, every test here is skipped
with the reason. Builds use `--network host` because the engine may have no bridge network; the
containers under test run with `--network none`, as under SageMaker's network isolation.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from container_helpers import BUILD_TIMEOUT, CPU_TAG, GPU_TAG, REPO, REPORT, docker, record_seconds

SDK3_PYTHON_ENV = "SAGEMAKER_CV_SDK3_PYTHON"


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "gpu_image: builds the GPU flavor and checks its libraries (SKIP_GPU_IMAGE=1 skips it)"
    )


def pytest_terminal_summary(terminalreporter):
    if REPORT:
        terminalreporter.section("container timings and sizes")
        for name, value in REPORT.items():
            terminalreporter.write_line(f"{name}: {value}")


@pytest.fixture(scope="session")
def base_image() -> str:
    base = os.environ.get("BASE_IMAGE")
    if not base:
        pytest.skip("BASE_IMAGE is not set (e.g. BASE_IMAGE=python:3.11-slim, or make test-container)")
    if shutil.which("docker") is None:
        pytest.skip("no docker CLI on PATH")
    try:
        info = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.skip("`docker info` did not answer within 60 s")
    if info.returncode != 0:
        pytest.skip(f"no Docker engine answers `docker info`: {info.stderr.strip()[:200]}")
    return base


def build(base: str, flavor: str, tag: str, algorithm: str = "image-classification") -> None:
    start = time.monotonic()
    docker(
        "build", "--network", "host", "--build-arg", f"FLAVOR={flavor}", "--build-arg", f"BASE_IMAGE={base}",
        "--build-arg", f"ALGORITHM={algorithm}", "-t", tag, str(REPO), timeout=BUILD_TIMEOUT, check=True,
    )  # fmt: skip
    if algorithm != "image-classification":
        record_seconds(f"docker build FLAVOR={flavor} ALGORITHM={algorithm}", time.monotonic() - start)
        return
    record_seconds(f"docker build FLAVOR={flavor}", time.monotonic() - start)
    size = docker("image", "inspect", "--format", "{{.Size}}", tag, check=True).stdout.strip()
    REPORT[f"image size FLAVOR={flavor}"] = f"{int(size) / 1e6:.0f} MB"


@pytest.fixture(scope="session")
def cpu_image(base_image: str) -> str:
    build(base_image, "cpu", CPU_TAG)
    return CPU_TAG


@pytest.fixture(scope="session")
def gpu_image(base_image: str) -> str:
    if os.environ.get("SKIP_GPU_IMAGE") == "1":
        pytest.skip(
            "SKIP_GPU_IMAGE=1: the GPU flavor's build (~3 GB of CUDA wheels) and library check are skipped"
        )
    build(base_image, "gpu", GPU_TAG)
    return GPU_TAG


@pytest.fixture(scope="session")
def cpu_images(base_image: str, cpu_image: str) -> dict[str, str]:
    """algorithm -> its CPU image, as `make image-cpu` tags them (the others differ from cpu_image
    only in their last layer, ENV SAGEMAKER_CV_ALGORITHM, so their builds come from the cache)."""
    images = {"image-classification": cpu_image}
    for algorithm in ("object-detection", "semantic-segmentation"):
        images[algorithm] = f"sagemaker-cv-test:{algorithm}-cpu"
        build(base_image, "cpu", images[algorithm], algorithm)
    return images


class Models(dict):
    """algorithm -> a small model trained on the host by the command line (the integration tier's
    reference job: tests/integration/trained.py), trained when a test first asks for it. Read-only."""

    def __init__(self, directory):
        super().__init__()
        self.directory = directory

    def __missing__(self, algorithm: str):
        integration = str(REPO / "tests" / "integration")
        if integration not in sys.path:
            sys.path.insert(0, integration)
        from trained import train_reference

        start = time.monotonic()
        (self.directory / algorithm).mkdir()
        self[algorithm] = train_reference(algorithm, self.directory / algorithm)
        record_seconds(f"reference model {algorithm} (host)", time.monotonic() - start)
        return self[algorithm]


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> Models:
    """The models the serving tests serve, transform and predict with (one per algorithm)."""
    return Models(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def sdk3_python() -> str:
    """The Python of an environment with SDK v3 (it cannot share one with v2): SAGEMAKER_CV_SDK3_PYTHON
    (`.ci/run` makes ~/.cache/sagemaker-cv/venv-sdk3), else .venv-sdk3 in the repository."""
    from container_helpers import has_compose

    python = os.environ.get(SDK3_PYTHON_ENV) or str(REPO / ".venv-sdk3" / "bin" / "python")
    if not Path(python).exists():
        pytest.skip(
            f"no SDK v3 environment at {python} ({SDK3_PYTHON_ENV}): "
            'python3 -m venv .venv-sdk3 && .venv-sdk3/bin/pip install "sagemaker>=3,<4"'
        )
    version = subprocess.run(
        [python, "-c", "import importlib.metadata as m; print(m.version('sagemaker'))"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    if not version.startswith("3."):
        pytest.skip(f"{python} has sagemaker {version or 'missing'}: these tests drive SDK v3")
    if not has_compose():
        pytest.skip("no docker compose: install Debian's docker-compose package or the compose plugin")
    return python
