"""Helpers shared by the container tests (a uniquely named module: tests/ has no packages)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PREFIX = "image-classification"
# Local mode's compose file always puts the containers on this user-defined bridge network.
LOCAL_NETWORK = "sagemaker-local"
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


def has_compose() -> bool:
    """`docker compose` (v2) or Debian's `docker-compose`: local mode of either SDK runs one of them."""
    if shutil.which("docker-compose"):
        return True
    return subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0


def remove_local_mode_leftovers(root: Path, network_existed: bool) -> None:
    """Local mode leaves its exited containers and its network behind: remove the containers whose
    compose project lives under `root`, then the network unless it was there before."""
    listed = docker(
        "ps", "-a", "-q", "--filter", "label=com.docker.compose.project.working_dir"
    ).stdout.split()
    for container in listed:
        workdir = docker(
            "inspect",
            "--format",
            '{{index .Config.Labels "com.docker.compose.project.working_dir"}}',
            container,
        ).stdout.strip()
        if workdir.startswith(str(root)):
            docker("rm", "-f", container)
    if not network_existed:
        docker("network", "rm", LOCAL_NETWORK)


def assert_model_loads(model_dir: Path, num_classes: int) -> list[str]:
    """The built-in's artifact names, loadable by mxnet here on the host, predicting num_classes;
    returns the file names."""
    import mxnet as mx
    import numpy as np

    names = sorted(p.name for p in model_dir.iterdir())
    params = [n for n in names if re.fullmatch(rf"{PREFIX}-\d{{4}}\.params", n)]
    assert f"{PREFIX}-symbol.json" in names, names
    assert "model-shapes.json" in names, names
    assert params, f"no {PREFIX}-NNNN.params in {names}"
    shapes = read_json(model_dir / "model-shapes.json")
    assert shapes[0]["name"] == "data", shapes
    _, channels, height, width = shapes[0]["shape"]

    net = mx.gluon.nn.SymbolBlock.imports(
        str(model_dir / f"{PREFIX}-symbol.json"), ["data"], str(model_dir / params[-1]), ctx=mx.cpu()
    )
    out = net(mx.nd.random.uniform(0, 255, (2, channels, height, width))).asnumpy()
    assert out.shape == (2, num_classes)
    assert np.isfinite(out).all()
    return names
