"""The CPU image run as SageMaker runs it: `docker run --network none -v TREE:/opt/ml IMAGE train`."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest
from container_helpers import assert_model_loads, docker, make_tree, record_seconds

pytestmark = pytest.mark.container


def run_job(image: str, tree: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    start = time.monotonic()
    result = docker(
        "run", "--rm", "--network", "none", "-v", f"{tree}:/opt/ml", image, *args, timeout=timeout
    )
    record_seconds(
        f"docker run {' '.join(args) or '(no argument)'} [{tree.parent.name}]", time.monotonic() - start
    )
    return result


@pytest.mark.parametrize("args", [("train",), ()], ids=["train", "no-argument"])
def test_trains_and_writes_loadable_artifacts(cpu_image, tmp_path, args):
    tree = tmp_path / "ml"
    hp = make_tree(tree)
    result = run_job(cpu_image, tree, *args)
    assert result.returncode == 0, result.stdout[-4000:]
    assert "Docker entrypoint called with argument(s): train" in result.stdout
    assert not (tree / "output" / "failure").exists()
    assert_model_loads(tree / "model", int(hp["num_classes"]))


def test_bad_hyperparameter_is_a_client_error(cpu_image, tmp_path):
    tree = tmp_path / "ml"
    make_tree(tree, mini_batch_size="zero")
    result = run_job(cpu_image, tree, "train", timeout=300)
    assert result.returncode == 2, result.stdout[-4000:]
    reason = (tree / "output" / "failure").read_text()
    assert reason.startswith("ClientError:"), reason
    assert "mini_batch_size" in reason and "'zero'" in reason, reason
    assert not list((tree / "model").iterdir())


def test_other_commands_exit_with_a_message(cpu_image, tmp_path):
    result = docker("run", "--rm", "--network", "none", cpu_image, "infer", timeout=120)
    assert result.returncode == 2
    assert "sagemaker-cv: unknown command 'infer'" in result.stdout and "predict" in result.stdout


def test_serve_without_a_model_says_so(cpu_image, tmp_path):
    result = docker("run", "--rm", "--network", "none", cpu_image, "serve", timeout=120)
    assert result.returncode == 2
    assert "model /opt/ml/model: no such file or directory" in result.stdout


def test_docker_stop_saves_the_model_and_ends_quickly(cpu_image, tmp_path):
    tree = tmp_path / "ml"
    hp = make_tree(tree, epochs="500")  # far longer than the test waits
    name = f"sagemaker-cv-stop-{tmp_path.name[-12:]}".replace("_", "-")
    started = docker(
        "run", "-d", "--name", name, "--network", "none", "-v", f"{tree}:/opt/ml", cpu_image, "train", check=True
    )  # fmt: skip
    assert started.returncode == 0
    try:
        # Stop only once training runs: an epoch has ended (its log line is out).
        deadline = time.monotonic() + 300
        while not re.search(r"Epoch\[\d+\] Time cost", docker("logs", name).stdout):
            state = docker("inspect", "--format", "{{.State.Running}}", name).stdout.strip()
            assert state == "true", (
                f"the container ended before training started:\n{docker('logs', name).stdout[-4000:]}"
            )
            assert time.monotonic() < deadline, "no epoch ended within 300 s"
            time.sleep(0.5)
        start = time.monotonic()
        # A 60 s grace period: only a process that handles SIGTERM itself stops within 10 s.
        docker("stop", "-t", "60", name, timeout=120, check=True)
        stopped_in = time.monotonic() - start
        record_seconds("docker stop -> container gone", stopped_in)
        log = docker("logs", name).stdout
        exit_code = int(docker("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip())
    finally:
        docker("rm", "-f", name)
    assert stopped_in < 10, f"docker stop took {stopped_in:.1f} s:\n{log[-3000:]}"
    assert exit_code == 0, f"exit code {exit_code} after SIGTERM:\n{log[-3000:]}"
    assert "SIGTERM" in log, log[-3000:]
    assert_model_loads(tree / "model", int(hp["num_classes"]))
