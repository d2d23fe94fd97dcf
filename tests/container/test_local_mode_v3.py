"""The SageMaker Python SDK v3's local mode (`sagemaker>=3`: ModelTrainer with
Mode.LOCAL_CONTAINER) against the CPU image, on one host and on two (dist_sync).

SDK v3 starts the containers with no argument, writes `"network_interface_name": "ethwe"` (which
the containers do not have), names the hosts algo-1, algo-2, and mounts one `model/` directory for
all hosts. It cannot live in the tests' own environment (which holds SDK v2), so it runs from its
own virtual environment: SAGEMAKER_CV_SDK3_PYTHON names that environment's Python (`.ci/run`
makes one in ~/.cache/sagemaker-cv/venv-sdk3 and sets it), else `.venv-sdk3/bin/python` in the
repository (`python3 -m venv .venv-sdk3 && .venv-sdk3/bin/pip install "sagemaker>=3,<4"`); the
`sdk3_python` fixture (conftest.py) finds it. Without either, or without docker compose, these
tests are skipped with the reason.
"""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
import time
from pathlib import Path

import pytest
from container_helpers import (
    LOCAL_NETWORK,
    PREFIX,
    assert_model_loads,
    docker,
    make_tree,
    record_seconds,
    remove_local_mode_leftovers,
)

pytestmark = pytest.mark.container

DRIVER = Path(__file__).with_name("sdk3_local_mode.py")
JOB_TIMEOUT = 600  # a job here takes well under a minute; a hang must end the test, not the CI run


@pytest.fixture
def local_root(tmp_path):
    """A fresh local_container_root per job, as the README asks (v3 never empties model/)."""
    network_existed = docker("network", "inspect", LOCAL_NETWORK).returncode == 0
    yield tmp_path / "job"
    remove_local_mode_leftovers(tmp_path, network_existed)


def as_user_writes(hyperparameters: dict[str, str]) -> dict:
    """Numbers as numbers (SDK v3 writes them with json.dumps: "2", "0.05")."""
    return {k: int(v) if v.isdigit() else v for k, v in hyperparameters.items()}


def train(python: str, image: str, tmp_path: Path, root: Path, instances: int, **hp: str):
    data = tmp_path / "ml"
    written = make_tree(data, **hp)
    command = [
        python, str(DRIVER), "--image", image, "--root", str(root), "--data", str(data / "input" / "data"),
        "--instances", str(instances), "--hyperparameters", json.dumps(as_user_writes(written)),
    ]  # fmt: skip
    # Local mode needs a region; no AWS call is made (local data, a local image).
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}
    env.pop("PYTHONPATH", None)  # the SDK v3 environment, not this package's source
    start = time.monotonic()
    result = subprocess.run(
        command,
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=JOB_TIMEOUT,
    )
    record_seconds(
        f"SDK v3 local mode, {instances} host(s), epochs={hp.get('epochs', '2')}", time.monotonic() - start
    )
    return result, written


def unpack_model(root: Path, into: Path) -> list[str]:
    archive = root / "compressed_artifacts" / "model.tar.gz"
    assert archive.is_file(), f"no {archive}"
    with tarfile.open(archive) as tar:
        members = sorted(m.name for m in tar.getmembers() if m.isfile())
        tar.extractall(into, filter="data")
    return members


def test_one_host_trains_with_no_argument_and_returns_the_model(sdk3_python, cpu_image, tmp_path, local_root):
    result, hp = train(sdk3_python, cpu_image, tmp_path, local_root, 1, epochs="1")
    assert result.returncode == 0, result.stdout[-4000:]
    assert "Docker entrypoint called with argument(s): train" in result.stdout  # v3 passes none
    members = unpack_model(local_root, tmp_path / "model")
    assert members == [f"{PREFIX}-0001.params", f"{PREFIX}-symbol.json", "model-shapes.json"], members
    assert_model_loads(tmp_path / "model", int(hp["num_classes"]))


@pytest.mark.parametrize("epochs", ["1", "2"])
def test_two_hosts_train_with_dist_sync_and_return_only_this_runs_model(
    sdk3_python, cpu_image, tmp_path, local_root, epochs
):
    # epochs=1 hung before the end-of-epoch synchronisation; "ethwe" killed ps-lite before the
    # fallback to the host's own address.
    result, hp = train(sdk3_python, cpu_image, tmp_path, local_root, 2, epochs=epochs, kv_store="dist_sync")
    assert result.returncode == 0, result.stdout[-6000:]
    last = int(epochs) - 1
    for rank, host in enumerate(("algo-1", "algo-2")):
        assert f"Host {host}: network interface 'ethwe'" in result.stdout, result.stdout[-4000:]
        assert f"Host {host} (worker {rank} of 2): Epoch[{last}] Throughput" in result.stdout
    assert "kv_store: dist_sync" in result.stdout
    members = unpack_model(local_root, tmp_path / "model")
    params = [m for m in members if m.endswith(".params")]
    # One best model of this run (best-model checkpointing keeps one), written once by algo-1.
    assert len(params) == 1 and int(params[0][-11:-7]) <= int(epochs), members
    assert members == sorted([*params, f"{PREFIX}-symbol.json", "model-shapes.json"]), members
    assert_model_loads(tmp_path / "model", int(hp["num_classes"]))
