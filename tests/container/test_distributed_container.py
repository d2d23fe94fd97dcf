"""Two containers as two SageMaker hosts, without the SDK: a user-defined bridge network where
each container answers to its host name (`--network-alias`), one /opt/ml tree per container, and
resourceconfig.json naming both hosts and the interface, as SageMaker writes it. (SDK v2 local
mode with instance_count=2 is in test_local_mode.py; it needs docker compose.)

Checks dist_sync training end to end in the image, and that losing a whole host (`docker kill`,
so no process of it says goodbye) fails the other container within 60 s with the host named.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid

import pytest
from container_helpers import docker, make_tree, record_seconds

pytestmark = pytest.mark.container

FAULT_BOUND = 60.0


@pytest.fixture
def network():
    name = f"sagemaker-cv-dist-{uuid.uuid4().hex[:8]}"
    made = docker("network", "create", "--driver", "bridge", name)
    if made.returncode != 0:
        pytest.skip(f"cannot create a bridge network: {made.stdout.strip()[:200]}")
    containers: list[str] = []
    yield name, containers
    for container in containers:
        docker("rm", "-f", container)
    docker("network", "rm", name)


def trees(tmp_path, hosts: list[str], **hp: str) -> list:
    roots = [tmp_path / h for h in hosts]
    make_tree(roots[0], kv_store="dist_sync", **hp)
    for root in roots[1:]:
        shutil.copytree(roots[0], root)
    for host, root in zip(hosts, roots):
        config = {"current_host": host, "hosts": hosts, "network_interface_name": "eth0"}
        (root / "input/config/resourceconfig.json").write_text(json.dumps(config))
        # The image runs as root; let the test read back whatever the containers write.
        for sub in ("model", "output"):
            (root / sub).mkdir(parents=True, exist_ok=True)
            (root / sub).chmod(0o777)
    return roots


def start(image: str, net: str, containers: list[str], host: str, root) -> str:
    name = f"{net}-{host}"
    docker(
        "run", "-d", "--name", name, "--hostname", host, "--network", net, "--network-alias", host,
        "-e", "SAGEMAKER_CV_LOG_INTERVAL=1", "-v", f"{root}:/opt/ml", image, "train", check=True,
    )  # fmt: skip
    containers.append(name)
    return name


def wait(name: str, timeout: float) -> int:
    result = docker("wait", name, timeout=timeout)
    return int(result.stdout.strip().splitlines()[-1])


def test_two_containers_train_with_dist_sync(cpu_image, network, tmp_path):
    net, containers = network
    hosts = ["algo-1", "algo-2"]
    roots = trees(tmp_path, hosts)
    started = time.monotonic()
    names = [start(cpu_image, net, containers, h, r) for h, r in zip(hosts, roots)]
    codes = [wait(n, 600) for n in names]
    record_seconds("two containers, dist_sync, 2 epochs", time.monotonic() - started)
    logs = [docker("logs", n).stdout for n in names]
    assert codes == [0, 0], logs[0][-3000:] + logs[1][-3000:]
    assert "kv_store: dist_sync" in logs[1]
    assert "Host algo-2 (worker 1 of 2): Epoch[1] Throughput:" in logs[1]
    written = sorted(p.name for p in (roots[0] / "model").iterdir())
    assert "image-classification-symbol.json" in written and "model-shapes.json" in written, written
    assert list((roots[1] / "model").iterdir()) == []


def test_a_lost_host_fails_the_other_container(cpu_image, network, tmp_path):
    net, containers = network
    hosts = ["algo-1", "algo-2"]
    roots = trees(tmp_path, hosts, epochs="200")
    names = [start(cpu_image, net, containers, h, r) for h, r in zip(hosts, roots)]
    deadline = time.monotonic() + 300
    while "Epoch[0] Batch [1]" not in docker("logs", names[0]).stdout:
        assert time.monotonic() < deadline, docker("logs", names[0]).stdout[-3000:]
        time.sleep(0.5)
    docker("kill", names[1], check=True)
    killed = time.monotonic()
    code = wait(names[0], FAULT_BOUND + 30)
    elapsed = time.monotonic() - killed
    assert elapsed < FAULT_BOUND, f"{elapsed:.0f} s"
    assert code == 1
    failure = (roots[0] / "output" / "failure").read_text()
    assert failure.startswith("AlgorithmError: DistributedTrainingError: launcher on host algo-2: "), failure
    assert docker("top", names[0]).returncode != 0  # the container, with every process in it, is gone
