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
import time

import pytest
from container_helpers import BUILD_TIMEOUT, CPU_TAG, GPU_TAG, REPO, REPORT, docker, record_seconds


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


def build(base: str, flavor: str, tag: str) -> None:
    start = time.monotonic()
    docker(
        "build", "--network", "host", "--build-arg", f"FLAVOR={flavor}", "--build-arg", f"BASE_IMAGE={base}",
        "-t", tag, str(REPO), timeout=BUILD_TIMEOUT, check=True,
    )  # fmt: skip
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
