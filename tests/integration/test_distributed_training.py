"""Multi-host training on one machine: every "host" is a separate `sagemaker-cv train` process with
its own /opt/ml tree and resourceconfig.json, and all reach each other over loopback because
SAGEMAKER_CV_HOST_MAP maps the host names to 127.0.0.1 (hosts it leaves out go to real DNS).

Each fault test injects one fault into a running job and asserts that every process of every
host is gone, with the failure named, within 60 s of the fault.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from sagemaker_cv.tools.demo import write_example_tree

pytestmark = pytest.mark.cluster

FAULT_BOUND = 60.0  # the limit from a fault to the end of every process
HP = {"epochs": "2", "mini_batch_size": "8", "num_layers": "20", "image_shape": "3,16,16"}


def free_ports() -> int:
    """A port p with p and p + 1 free (scheduler and control link)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port < 65000:
            try:
                with socket.socket() as s2:
                    s2.bind(("", port + 1))
                return port
            except OSError:
                continue
    raise RuntimeError("no two consecutive free ports")


class Cluster:
    def __init__(
        self,
        tmp_path: Path,
        hosts: int,
        hyperparameters: dict | None = None,
        per_class: int = 16,
        resource: dict | None = None,
        image_size: int = 24,
    ):
        self.names = [f"algo-{i + 1}" for i in range(hosts)]
        self.roots = [tmp_path / name for name in self.names]
        write_example_tree(
            self.roots[0],
            per_class=per_class,
            val_per_class=4,
            image_size=image_size,
            hyperparameters={**HP, **(hyperparameters or {})},
        )
        for root in self.roots[1:]:
            shutil.copytree(self.roots[0], root)
        for name, root in zip(self.names, self.roots):
            (root / "input/config/resourceconfig.json").write_text(
                json.dumps({"current_host": name, "hosts": self.names, **(resource or {})})
            )
        self.port = free_ports()
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs = {name: tmp_path / f"{name}.log" for name in self.names}

    def env(self, name: str, **extra) -> dict:
        env = dict(os.environ)
        env.update(
            SAGEMAKER_CV_HOST_MAP=",".join(f"{n}=127.0.0.1" for n in self.names),
            SAGEMAKER_CV_PS_PORT=str(self.port),
            SAGEMAKER_CV_LOG_INTERVAL="1",
            SAGEMAKER_CV_RENDEZVOUS_TIMEOUT="50",
            SAGEMAKER_CV_DUMP_PARAMS=str(self.roots[0].parent / f"{name}-params.npz"),
        )
        env.update({k: str(v) for k, v in extra.items()})
        return env

    def start(self, names: list[str] | None = None, env: dict | None = None) -> None:
        for name in names or self.names:
            root = self.roots[self.names.index(name)]
            with open(self.logs[name], "w") as log:
                self.procs[name] = subprocess.Popen(
                    [sys.executable, "-m", "sagemaker_cv", "train", "--ml-root", str(root)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=self.env(name, **((env or {}).get(name, {}))),
                    start_new_session=True,  # the cleanup ends exactly this job's process groups
                )

    def wait(self, timeout: float) -> dict[str, int]:
        deadline = time.monotonic() + timeout
        codes = {}
        for name, proc in self.procs.items():
            try:
                codes[name] = proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pytest.fail(f"{name} still running after {timeout:.0f} s:\n{self.tail(name)}")
        return codes

    def log(self, name: str) -> str:
        return self.logs[name].read_text()

    def tail(self, name: str, lines: int = 40) -> str:
        return "\n".join(self.log(name).splitlines()[-lines:])

    def failure(self, name: str) -> str | None:
        path = self.roots[self.names.index(name)] / "output" / "failure"
        return path.read_text() if path.exists() else None

    def wait_for(self, name: str, pattern: str, timeout: float = 120) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.log(name))
            if match:
                return match
            if self.procs[name].poll() is not None:
                pytest.fail(f"{name} exited before logging {pattern!r}:\n{self.tail(name)}")
            time.sleep(0.1)
        pytest.fail(f"{name} did not log {pattern!r} within {timeout} s:\n{self.tail(name)}")

    def pid(self, name: str, role: str) -> int:
        return int(self.wait_for(name, rf"Started {role} on host {name} \(pid (\d+)\)").group(1))

    def role_pids(self) -> dict[str, int]:
        pids = {}
        for name in self.procs:
            for role, pid in re.findall(rf"Started (\w+) on host {name} \(pid (\d+)\)", self.log(name)):
                pids[f"{role}@{name}"] = int(pid)
        return pids

    def params(self, name: str) -> dict[str, np.ndarray]:
        with np.load(self.roots[0].parent / f"{name}-params.npz") as data:
            return dict(data)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture
def cluster(tmp_path):
    made = []

    def make(hosts: int, **kwargs) -> Cluster:
        job = tmp_path / f"job{len(made)}"
        job.mkdir()
        made.append(Cluster(job, hosts, **kwargs))
        return made[-1]

    yield make
    for c in made:
        c.stop()


def assert_all_gone(c: Cluster, since: float, pids: dict[str, int]) -> float:
    """Every launcher has exited and no role process survives; returns seconds since `since`."""
    codes = c.wait(FAULT_BOUND + 5)
    elapsed = time.monotonic() - since
    survivors = [key for key, pid in pids.items() if alive(pid)]
    assert not survivors, f"orphans left: {survivors}"
    assert elapsed < FAULT_BOUND, f"the job took {elapsed:.1f} s to fail (limit {FAULT_BOUND} s)"
    assert all(code != 0 for code in codes.values()), codes
    return elapsed


# ---- training ------------------------------------------------------------------------------------


def test_dist_sync_three_hosts_hold_identical_parameters_and_only_the_primary_writes(cluster):
    c = cluster(3)
    c.start()
    codes = c.wait(300)
    assert codes == {"algo-1": 0, "algo-2": 0, "algo-3": 0}, c.tail("algo-2")
    reference = c.params("algo-1")
    trainable = [k for k in reference if k.startswith("trainable/")]
    assert len(trainable) > 20
    for name in ("algo-2", "algo-3"):
        other = c.params(name)
        different = [k for k in trainable if not np.array_equal(reference[k], other[k])]
        assert not different, f"{name} differs from algo-1 in {different[:5]}"
    # Not vacuous: the parameters did change from the same start (different per-host data, same result).
    assert any(np.abs(reference[k]).sum() > 0 for k in trainable)
    written = sorted(p.name for p in (c.roots[0] / "model").iterdir())
    assert len(written) == 3 and written[1:] == ["image-classification-symbol.json", "model-shapes.json"], (
        written
    )
    assert re.fullmatch(r"image-classification-000[12]\.params", written[0]), written
    for root in c.roots[1:]:
        assert list((root / "model").iterdir()) == [], f"{root.name} wrote model files"
    primary, others = c.log("algo-1"), [c.log(n) for n in ("algo-2", "algo-3")]
    assert "Validation-accuracy=" in primary and all("Validation-accuracy=" not in o for o in others)
    for rank, (name, text) in enumerate(zip(c.names, [primary, *others])):
        assert f"Host {name} (worker {rank} of 3): Epoch[1] Throughput:" in text
        assert "kv_store: dist_sync" in text
        # 3 classes x 16 images = 48 samples, batch 8, 3 workers: 2 batches per epoch on every host.
        assert len(re.findall(r"Epoch\[0\] Batch \[\d+\]", text)) == 2, name
    assert all(c.failure(n) is None for n in c.names)
    assert not any(alive(pid) for pid in c.role_pids().values())


def test_dist_async_two_hosts_completes_in_one_shared_model_directory(cluster):
    c = cluster(2, hyperparameters={"kv_store": "dist_async"})
    # As SDK v3 local mode mounts it: one model directory for every host, never emptied, with an
    # earlier run's model in it. The primary removes that (only the primary writes the model).
    shared = c.roots[0] / "model"
    (shared / "image-classification-0007.params").write_bytes(b"an earlier run's")
    (shared / "notes.txt").write_text("the user's")
    (c.roots[1] / "model").rmdir()
    (c.roots[1] / "model").symlink_to(shared)
    c.start()
    codes = c.wait(300)
    assert codes == {"algo-1": 0, "algo-2": 0}, c.tail("algo-1") + c.tail("algo-2")
    assert "kv_store: dist_async" in c.log("algo-2")
    written = sorted(p.name for p in shared.iterdir())
    assert written[1:] == ["image-classification-symbol.json", "model-shapes.json", "notes.txt"], written
    assert re.fullmatch(r"image-classification-000[12]\.params", written[0]), written
    assert "Removed the model files an earlier run left" in c.log("algo-1")
    assert "Removed the model files" not in c.log("algo-2")


def test_early_stopping_is_decided_by_the_primary_and_followed_by_every_host(cluster):
    # Improving means doubling the best accuracy (tolerance 1): stops after epoch 1 or 2 of 10.
    hp = {"epochs": "10", "early_stopping": "true", "early_stopping_min_epochs": "1"}
    hp.update(early_stopping_patience="1", early_stopping_tolerance="1")
    c = cluster(2, hyperparameters=hp)
    c.start()
    codes = c.wait(300)
    assert codes == {"algo-1": 0, "algo-2": 0}, c.tail("algo-1") + c.tail("algo-2")
    primary = re.search(
        r"Early stopping at epoch (\d+): validation accuracy has not improved", c.log("algo-1")
    )
    other = re.search(r"Early stopping at epoch (\d+): decided by the primary host algo-1", c.log("algo-2"))
    assert primary and other and primary.group(1) == other.group(1)
    epochs = [len(re.findall(r"Epoch\[\d+\] Train-accuracy", c.log(n))) for n in c.names]
    assert epochs[0] == epochs[1] == int(primary.group(1)) + 1 < 10


# ---- the end of training -------------------------------------------------------------------------


def test_a_worker_that_finishes_first_has_sent_its_last_gradients(cluster):
    # Python runs ahead of MXNet's engine: nothing waits for it during an epoch unless a batch line
    # reads the metrics (not with the default interval of 20 and short epochs). algo-2's worker
    # leaves the instant its training ends (SAGEMAKER_CV_TEST_EXIT_WHEN_TRAINED, the earliest a
    # finished worker could exit). Without the end-of-epoch synchronisation its last gradient
    # pushes were still queued in the engine then, never reached the servers, and algo-1 waited
    # for them forever (issue seen as a two-host job that hangs at the end of training). With it,
    # algo-1 completes its last update, validates and saves.
    # resourceconfig names the interface SDK v3 local mode writes, which these hosts do not have:
    # the servers and workers bind the host's own address instead.
    c = cluster(2, hyperparameters={"epochs": "1"}, resource={"network_interface_name": "ethwe"})
    quiet = {
        "SAGEMAKER_CV_LOG_INTERVAL": "100",
        "SAGEMAKER_CV_DUMP_PARAMS": "",
    }  # neither waits for the engine
    c.start(env={"algo-1": quiet, "algo-2": {**quiet, "SAGEMAKER_CV_TEST_EXIT_WHEN_TRAINED": "1"}})
    codes = c.wait(FAULT_BOUND + 60)
    assert codes == {"algo-1": 0, "algo-2": 0}, c.tail("algo-1") + c.tail("algo-2")
    assert "Exiting as soon as training ended" in c.log("algo-2")
    for name in c.names:
        assert re.search(
            rf"Host {name}: network interface 'ethwe' \(resourceconfig.json network_interface_name\) has no IPv4 "
            r"address on this host; binding the parameter server's ports to this host's own address 127\.0\.0\.1",
            c.log(name),
        ), c.tail(name)
    assert "Epoch[0] Validation-accuracy=" in c.log("algo-1")
    assert (c.roots[0] / "model" / "image-classification-0001.params").exists()
    # algo-1's worker then waits in the kvstore's exit barrier for the worker that left: ended.
    assert "worker on host algo-1 saved the model but did not exit within 10 s; ending it" in c.log("algo-1")


def test_a_worker_that_left_with_gradients_unsent_fails_the_job_fast(cluster):
    # algo-2's worker exits (code 0, as if finished) after step 2 of 3: the servers never get its
    # gradients for the last step, so algo-1 can never complete it. The job must fail once every
    # other worker is gone and the primary waited a lost heartbeat's time, not at the stall deadline.
    c = cluster(2, hyperparameters={"epochs": "1"})
    peer = {"SAGEMAKER_CV_PEER_TIMEOUT": "10"}
    c.start(env={"algo-1": peer, "algo-2": {**peer, "SAGEMAKER_CV_TEST_EXIT_AT_STEP": "2"}})
    c.wait_for("algo-2", r"Exiting after step 2")
    left = time.monotonic()
    pids = c.role_pids()
    elapsed = assert_all_gone(c, left, pids)
    assert elapsed > 8, elapsed  # the primary waited its PEER_TIMEOUT, not less
    for name in c.names:
        reason = c.failure(name)
        assert reason.startswith(
            "AlgorithmError: DistributedTrainingError: launcher on host algo-1: the worker has "
        ), reason
        assert re.search(
            r"waited \d+ s \(SAGEMAKER_CV_PEER_TIMEOUT\) (after step \d|at the end of epoch 0) for the parameter "
            r"server although every other host's worker had finished training: gradients of a finished worker "
            r"never reached the servers",
            reason,
        ), reason


# ---- faults --------------------------------------------------------------------------------------

LONG = {"epochs": "200"}  # a job that cannot finish before the fault is handled


def test_killed_worker_fails_every_host(cluster):
    c = cluster(2, hyperparameters=LONG)
    c.start()
    victim = c.pid("algo-2", "worker")
    c.wait_for("algo-2", r"Epoch\[0\] Batch \[1\]")
    pids = c.role_pids()
    os.kill(victim, signal.SIGKILL)
    fault = time.monotonic()
    assert_all_gone(c, fault, pids)
    for name in c.names:
        reason = c.failure(name)
        assert reason.startswith("AlgorithmError: "), reason
        assert "worker on host algo-2: was killed by SIGKILL" in reason, (name, reason)
    assert "(host algo-1 stopped its own processes)" in c.failure("algo-1")


def test_killed_server_fails_every_host(cluster):
    c = cluster(2, hyperparameters=LONG)
    c.start()
    victim = c.pid("algo-1", "server")
    c.wait_for("algo-2", r"Epoch\[0\] Batch \[1\]")
    pids = c.role_pids()
    os.kill(victim, signal.SIGKILL)
    fault = time.monotonic()
    assert_all_gone(c, fault, pids)
    for name in c.names:
        assert "server on host algo-1: was killed by SIGKILL while training was running" in c.failure(name)


def test_exception_in_one_worker_fails_every_host(cluster):
    c = cluster(2, hyperparameters=LONG)
    # The primary's model directory is a dangling symlink: it passes the check before training (a
    # directory can be made there), then saving the first epoch raises in the worker, while the
    # other worker has moved on to the next epoch and waits for it. (A file there is refused by
    # the launcher before any host starts.)
    model = c.roots[0] / "model"
    model.rmdir()
    model.symlink_to("nowhere")
    c.start()
    c.wait_for("algo-2", r"Epoch\[0\] Batch \[1\]")
    pids = c.role_pids()
    match = c.wait_for("algo-1", r"Worker failed", timeout=60)
    assert match
    fault = time.monotonic()
    assert_all_gone(c, fault, pids)
    assert c.procs["algo-1"].returncode == 1
    for name in c.names:
        reason = c.failure(name)
        assert reason.startswith("AlgorithmError: "), reason
        assert "worker on host algo-1: FileExistsError" in reason, reason


def test_client_error_in_one_worker_fails_every_host_as_a_client_error(cluster):
    c = cluster(2, hyperparameters=LONG)
    # algo-2's copy of the training data is broken: its worker rejects it before joining the store.
    rec = next((c.roots[1] / "input/data/train").glob("*.rec"))
    rec.write_bytes(b"\x00" * 64)
    c.start()
    fault = time.monotonic()
    codes = c.wait(FAULT_BOUND + 60)
    assert codes == {"algo-1": 2, "algo-2": 2}
    pids = c.role_pids()
    assert not [k for k, p in pids.items() if alive(p)]
    for name in c.names:
        reason = c.failure(name)
        assert reason.startswith("ClientError: worker on host algo-2: "), reason
    assert time.monotonic() - fault < FAULT_BOUND + 60


def test_blocked_cluster_fails_after_the_stall_deadline(cluster):
    c = cluster(2, hyperparameters=LONG)
    stall = {"SAGEMAKER_CV_STALL_TIMEOUT": "8"}
    c.start(env={"algo-1": stall, "algo-2": stall})
    victim = c.pid("algo-2", "worker")
    c.wait_for("algo-2", r"Epoch\[0\] Batch \[2\]")
    pids = c.role_pids()
    # Every process stays alive, but algo-2's worker no longer moves, so algo-1's waits for it.
    os.kill(victim, signal.SIGSTOP)
    hang = time.monotonic()
    assert_all_gone(c, hang, pids)
    for name in c.names:
        reason = c.failure(name)
        assert "launcher on host algo-1: no worker made progress for" in reason, reason
        assert "(SAGEMAKER_CV_STALL_TIMEOUT) although every process is alive" in reason, reason
        assert re.search(r"last worker reports: algo-1 step \d+ \(\d+ s ago\), algo-2 step \d+", reason), (
            reason
        )


def test_scheduler_host_that_never_resolves_fails_the_others(cluster):
    c = cluster(3)
    # algo-1 (scheduler, server and worker) is left out of the map and is unknown to DNS.
    env = {
        "SAGEMAKER_CV_HOST_MAP": "algo-2=127.0.0.1,algo-3=127.0.0.1",
        "SAGEMAKER_CV_HOST_RESOLVE_TIMEOUT": "5",
    }
    started = time.monotonic()
    c.start(["algo-2", "algo-3"], env={"algo-2": env, "algo-3": env})
    codes = c.wait(FAULT_BOUND + 5)
    assert time.monotonic() - started < FAULT_BOUND
    assert codes == {"algo-2": 1, "algo-3": 1}
    for name in ("algo-2", "algo-3"):
        reason = c.failure(name)
        assert reason.startswith(f"AlgorithmError: DistributedTrainingError: launcher on host {name}: "), (
            reason
        )
        assert "host 'algo-1' did not resolve to an address within 5 s" in reason
        assert "that host runs the scheduler and server and worker" in reason
    assert c.role_pids() == {}  # nothing was started


def test_a_host_that_never_joins_fails_the_job_at_the_rendezvous_deadline(cluster):
    # Two jobs, each missing one host: the primary waits for algo-2, the other host for algo-1.
    alone_primary, alone_other = cluster(2), cluster(2)
    deadline = {"SAGEMAKER_CV_RENDEZVOUS_TIMEOUT": "5"}
    alone_primary.start(["algo-1"], env={"algo-1": deadline})
    alone_other.start(["algo-2"], env={"algo-2": deadline})
    started = time.monotonic()
    assert alone_primary.wait(FAULT_BOUND) == {"algo-1": 1}
    assert alone_other.wait(FAULT_BOUND) == {"algo-2": 1}
    assert time.monotonic() - started < FAULT_BOUND
    assert "launcher on host algo-2: host(s) algo-2 did not join within 5 s" in alone_primary.failure(
        "algo-1"
    )
    reason = alone_other.failure("algo-2")
    assert (
        "launcher on host algo-1: the launcher on algo-1 did not accept a connection at 127.0.0.1:" in reason
    )


def test_sigterm_while_waiting_for_dns_ends_the_wait(cluster):
    c = cluster(2)
    env = {"SAGEMAKER_CV_HOST_MAP": "algo-2=127.0.0.1", "SAGEMAKER_CV_HOST_RESOLVE_TIMEOUT": "300"}
    c.start(["algo-2"], env={"algo-2": env})
    c.wait_for("algo-2", r"Host algo-1 does not resolve yet")
    os.kill(c.procs["algo-2"].pid, signal.SIGTERM)
    signalled = time.monotonic()
    assert c.wait(30) == {"algo-2": 0}  # a stop, as on a single host
    assert time.monotonic() - signalled < 10  # the 300 s DNS wait is not sat out
    assert c.failure("algo-2") is None
    assert "Stopped by SIGTERM before training started: no model was written" in c.log("algo-2")


@pytest.mark.parametrize(
    "signalled",
    [
        "algo-1",
        # Relayed through the primary, whose worker stops first: when this host's worker stopped
        # first, the primary's blocked forever in a push of the batch after.
        pytest.param("algo-2", id="other-host"),
    ],
)
def test_sigterm_on_the_primary_stops_every_host_and_saves_the_model(cluster, signalled):
    c = cluster(2, hyperparameters=LONG)
    c.start()
    c.wait_for("algo-2", r"Epoch\[1\] Batch \[1\]")  # after the first epoch: a model to save
    pids = c.role_pids()
    os.kill(c.procs[signalled].pid, signal.SIGTERM)
    signalled_at = time.monotonic()
    codes = c.wait(FAULT_BOUND + 5)
    assert time.monotonic() - signalled_at < FAULT_BOUND
    assert codes == {"algo-1": 0, "algo-2": 0}, c.tail("algo-1") + c.tail("algo-2")
    assert not [k for k, p in pids.items() if alive(p)]
    assert "Received SIGTERM: finishing the current batch, then saving the model" in c.log("algo-1")
    for name in c.names:
        assert f"Stopping (SIGTERM on host {signalled})" in c.log(name)
    # algo-2's worker is stopped only after the primary's stopped, so it has sent the gradients of
    # the primary's last batch (it may then be blocked in a push of the next batch, and cannot
    # always log its stop: its launcher ends it).
    assert re.search(r"The primary's worker stopped after step \d+; stopping ours", c.log("algo-2"))
    assert list((c.roots[0] / "model").glob("image-classification-*.params"))
    assert list((c.roots[1] / "model").iterdir()) == []
    assert c.failure("algo-1") is None and c.failure("algo-2") is None
