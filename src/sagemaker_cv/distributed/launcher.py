"""One host's share of a multi-host job: start the parameter-server roles, watch them, fail fast.

ps-lite alone never notices a dead peer: a killed worker or server, or a worker that raises,
leaves every other process blocked forever, and a missing scheduler blocks kv.create. So the
`sagemaker-cv train` process on each host becomes a launcher that never trains itself:

* it resolves every host (bounded retry), then joins the launchers' own control link: a TCP
  connection from every host to the launcher on hosts[0], with heartbeats both ways;
* once every host has joined, it starts its roles as child processes (scheduler on hosts[0], a
  server everywhere, and the worker: `python -m sagemaker_cv.distributed.worker`, the trainer);
* it watches the children, the worker's progress reports (a pipe) and the link. Any role death,
  a worker exception, a lost host or a cluster-wide stall becomes an abort that hosts[0] relays
  to every host: each kills its children, and raises in its main thread, so the CLI writes the
  failure file (naming the host and role where it started) and exits non-zero;
* SIGTERM goes to the worker first (it finishes the batch and the primary saves), then to the
  servers and the scheduler, which the workers still need until then.

Children ask the kernel to SIGKILL them if the launcher dies (PR_SET_PDEATHSIG), so even a
SIGKILLed launcher leaves no orphan.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field

from sagemaker_cv.contract import logs
from sagemaker_cv.contract.config import ResourceConfig
from sagemaker_cv.contract.errors import AlgorithmError, ClientError, TrainingInterrupted
from sagemaker_cv.contract.paths import MLPaths
from sagemaker_cv.distributed import plan as distributed

log = logs.get("launcher")

LAUNCHER_PID_ENV = "SAGEMAKER_CV_LAUNCHER_PID"
REPORT_FD_ENV = "SAGEMAKER_CV_REPORT_FD"
DECISION_FD_ENV = "SAGEMAKER_CV_DECISION_FD"
BEAT_INTERVAL = 1.0
SHUTDOWN_WAIT = 20.0  # after success: how long servers and scheduler get to exit on their own


def die_with_parent() -> None:
    """In a child: have the kernel SIGKILL this process when the launcher dies (Linux)."""
    expected = os.environ.get(LAUNCHER_PID_ENV)
    if not expected or not sys.platform.startswith("linux"):
        return
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != int(expected):  # the launcher died before prctl took effect
        os._exit(1)


class DistributedTrainingError(AlgorithmError):
    """Another process of the job failed, died, hung or was lost."""


@dataclass
class Fault:
    """Where a job failure started and why; travels between hosts as JSON."""

    host: str
    role: str
    kind: str  # "ClientError" | "AlgorithmError"
    problems: list[str]

    def as_error(self, here: str) -> Exception:
        head = f"{self.role} on host {self.host}: {self.problems[0]}"
        if self.host != here:
            head += f" (host {here} stopped its own processes)"
        lines = [head, *self.problems[1:]]
        if self.kind == "ClientError":
            return ClientError(lines)
        return DistributedTrainingError("; ".join(lines))


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


class Abort(Exception):
    def __init__(self, fault: Fault):
        super().__init__(fault.problems[0])
        self.fault = fault


# ---- the control link ----------------------------------------------------------------------------


class Conn:
    """One newline-delimited JSON connection between two launchers."""

    def __init__(self, sock: socket.socket, host: str | None = None):
        sock.settimeout(5.0)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock, self.host, self.buffer = sock, host, b""
        self.heard = time.monotonic()
        self.active = True  # the peer's worker made progress lately (or is still preparing data)
        self.progress = "not started"  # the peer's last worker report, for the stall message
        self.done = False
        self.closed = False

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, message: dict) -> bool:
        if self.closed:
            return False
        try:
            self.sock.sendall(json.dumps(message).encode() + b"\n")
            return True
        except OSError:
            self.closed = True
            return False

    def receive(self) -> list[dict] | None:
        """Messages now readable; None when the peer has closed the connection."""
        try:
            chunk = self.sock.recv(65536)
        except OSError:
            chunk = b""
        if not chunk:
            self.closed = True
            return None
        self.heard = time.monotonic()
        self.buffer += chunk
        *lines, self.buffer = self.buffer.split(b"\n")
        return [json.loads(line) for line in lines if line.strip()]

    def close(self) -> None:
        self.closed = True
        try:
            self.sock.close()
        except OSError:
            pass


# ---- role processes ------------------------------------------------------------------------------


@dataclass
class Role:
    name: str
    process: subprocess.Popen
    exit_code: int | None = None


@dataclass
class WorkerReports:
    """What the worker told the launcher through its pipe."""

    fd: int
    buffer: bytes = b""
    started: bool = False
    trained: bool = False
    last_progress: float = field(default_factory=time.monotonic)
    failure: dict | None = None
    eof: bool = False
    step: int = 0
    decisions: list = field(default_factory=list)  # the primary's end-of-epoch stop decisions
    decision_fd: int | None = None  # where the launcher passes decisions on to its worker

    def drain(self) -> bool:
        """Read what is there; False at end of file."""
        if self.eof:
            return False
        try:
            chunk = os.read(self.fd, 65536)
        except BlockingIOError:
            return True
        if not chunk:
            self.eof = True
            return False
        self.buffer += chunk
        *lines, self.buffer = self.buffer.split(b"\n")
        for line in lines:
            message = json.loads(line)
            event = message.get("event")
            self.last_progress = time.monotonic()
            self.step = message.get("step", self.step)
            if event == "started":
                self.started = True
            elif event == "trained":
                self.trained = True
            elif event == "decision":
                self.decisions.append(message)
            elif event == "failed":
                self.failure = message
        return True


# ---- the launcher --------------------------------------------------------------------------------


class Launcher:
    def __init__(
        self, paths: MLPaths, algorithm: str, resource: ResourceConfig, settings: distributed.Settings
    ):
        self.paths, self.algorithm, self.resource, self.settings = paths, algorithm, resource, settings
        self.me = resource.current_host
        self.hosts = list(resource.hosts)
        self.primary = resource.is_primary
        self.roles: dict[str, Role] = {}
        self.peers: dict[str, Conn] = {}  # on hosts[0]: every other host; elsewhere: {hosts[0]: link}
        self.reports: WorkerReports | None = None
        self.signalled = False
        self.phase = "rendezvous"  # -> running -> stopping | finishing
        self.worker_done = False
        self.finish_received = False
        self.last_beat = 0.0
        self.cluster_progress = time.monotonic()
        self.listener: socket.socket | None = None
        self._unnamed: list[Conn] = []  # accepted on hosts[0], hello not yet read

    # -- entry --

    def run(self) -> bool:
        """Returns True when the job was stopped by SIGTERM, False when it trained to the end."""
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            self._resolve()
            self._connect()
            self._rendezvous()
            self._start_roles()
            self.phase = "running"
            return self._supervise()
        except Abort as abort:
            self._broadcast_abort(abort.fault)
            self._kill_all()
            raise abort.fault.as_error(self.me) from None
        finally:
            self._kill_all()
            for conn in self.peers.values():
                conn.close()
            if self.listener:
                self.listener.close()
            if self.reports:
                os.close(self.reports.fd)
                os.close(self.reports.decision_fd)
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _on_signal(self, signum, frame) -> None:
        log.info("Launcher on host %s received %s", self.me, signal.Signals(signum).name)
        self.signalled = True

    def _fault(self, role: str, problem: str, host: str | None = None) -> Abort:
        return Abort(Fault(host or self.me, role, "AlgorithmError", [problem]))

    # -- resolution and rendezvous --

    def _resolve(self) -> None:
        def on_retry(host, exc, wait):
            self._check_signal_during_setup()  # docker stop while DNS lags: do not wait it out
            log.info("Host %s does not resolve yet (%s); retrying in %.1f s", host, exc, wait)

        try:
            self.addresses = distributed.resolve_hosts(
                self.hosts,
                timeout=self.settings.resolve_timeout,
                host_map=self.settings.host_map,
                on_retry=on_retry,
                sleep=self._sleep_unless_signalled,
            )
        except distributed.HostResolutionError as exc:
            roles = " and ".join(distributed.roles_for(exc.host, self.hosts))
            raise self._fault("launcher", f"{exc}; that host runs the {roles}") from None
        log.info(
            "Distributed training on %d hosts: %s; scheduler on %s:%d",
            len(self.hosts),
            ", ".join(f"{h}={self.addresses[h]}" for h in self.hosts),
            self.hosts[0],
            self.settings.ps_port,
        )

    def _connect(self) -> None:
        deadline = time.monotonic() + self.settings.rendezvous_timeout
        if self.primary:
            try:
                self.listener = socket.create_server(("", self.settings.control_port))
            except OSError as exc:
                raise self._fault(
                    "launcher",
                    f"cannot listen on the control port {self.settings.control_port} "
                    f"({distributed.CONTROL_PORT_ENV}): {exc}",
                ) from None
            self.listener.setblocking(False)
            self.rendezvous_deadline = deadline
            return
        address = (self.addresses[self.hosts[0]], self.settings.control_port)
        last_error: OSError | None = None
        while time.monotonic() < deadline:
            self._check_signal_during_setup()
            try:
                sock = socket.create_connection(address, timeout=2.0)
            except OSError as exc:
                last_error = exc
                time.sleep(0.5)
                continue
            conn = Conn(sock, self.hosts[0])
            conn.send({"type": "hello", "host": self.me})
            self.peers[self.hosts[0]] = conn
            self.rendezvous_deadline = deadline
            return
        raise self._fault(
            "launcher",
            f"the launcher on {self.hosts[0]} did not accept a connection at {address[0]}:{address[1]} within "
            f"{self.settings.rendezvous_timeout:.0f} s ({distributed.RENDEZVOUS_TIMEOUT_ENV}); last error: {last_error}",
            host=self.hosts[0],
        )

    def _sleep_unless_signalled(self, seconds: float) -> None:
        # Back-off waits reach 30 s; a signal handler alone would not cut a time.sleep short.
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self._check_signal_during_setup()
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))

    def _check_signal_during_setup(self) -> None:
        if self.signalled:  # a stop, not a failure: the CLI exits 0 as a stopped single-host job does
            raise TrainingInterrupted("SIGTERM")

    def _rendezvous(self) -> None:
        while True:
            self._check_signal_during_setup()
            if self.primary:
                missing = [h for h in self.hosts[1:] if h not in self.peers]
                if not missing:
                    for conn in self.peers.values():
                        conn.send({"type": "start"})
                    log.info("All %d hosts joined; starting the parameter server", len(self.hosts))
                    return
                if time.monotonic() > self.rendezvous_deadline:
                    raise self._fault(
                        "launcher",
                        f"host(s) {', '.join(missing)} did not join within {self.settings.rendezvous_timeout:.0f} s "
                        f"({distributed.RENDEZVOUS_TIMEOUT_ENV})",
                        host=missing[0],
                    )
                self._accept(timeout=0.2)
            else:
                link = self.peers[self.hosts[0]]
                if time.monotonic() > self.rendezvous_deadline:
                    raise self._fault(
                        "launcher",
                        f"not every host joined within {self.settings.rendezvous_timeout:.0f} s "
                        f"({distributed.RENDEZVOUS_TIMEOUT_ENV})",
                        host=self.hosts[0],
                    )
                readable, _, _ = select.select([link], [], [], 0.2)
                if readable:
                    messages = link.receive()
                    if messages is None:
                        raise self._fault(
                            "launcher", "closed the control link before training started", self.hosts[0]
                        )
                    for message in messages:
                        if message["type"] == "start":
                            return
                        if message["type"] == "abort":
                            raise Abort(Fault(**message["fault"]))

    def _accept(self, timeout: float) -> None:
        """On hosts[0]: take new connections and their hello (briefly blocking)."""
        pending = [self.listener, *self._unnamed]
        readable, _, _ = select.select(pending, [], [], timeout)
        for item in readable:
            if item is self.listener:
                try:
                    sock, _ = self.listener.accept()
                except BlockingIOError:
                    continue
                self._unnamed.append(Conn(sock))
                continue
            messages = item.receive()
            if messages == []:
                continue  # the hello line is not complete yet
            self._unnamed.remove(item)
            if not messages or messages[0].get("type") != "hello":
                item.close()
                continue
            host = messages[0]["host"]
            if host not in self.hosts[1:] or host in self.peers:
                log.warning(
                    "Control link: ignoring a hello from %r (expected one of %s)", host, self.hosts[1:]
                )
                item.close()
                continue
            item.host = host
            self.peers[host] = item
            log.info("Host %s joined", host)

    # -- roles --

    def _start_roles(self) -> None:
        ips = [self.addresses[h] for h in self.hosts]
        base = dict(os.environ)
        base[LAUNCHER_PID_ENV] = str(os.getpid())
        for name in distributed.roles_for(self.me, self.hosts):
            env = dict(base)
            env.update(
                distributed.dmlc_env(
                    name,
                    ips,
                    self.settings.ps_port,
                    interface=self.resource.network_interface_name,
                    node_host=self.addresses[self.me],
                )
            )
            pass_fds: tuple[int, ...] = ()
            if name == "worker":
                read_fd, write_fd = os.pipe()
                os.set_blocking(read_fd, False)
                decision_read, decision_write = os.pipe()
                env[REPORT_FD_ENV] = str(write_fd)
                env[DECISION_FD_ENV] = str(decision_read)
                pass_fds = (write_fd, decision_read)
                command = [
                    sys.executable,
                    "-m",
                    "sagemaker_cv.distributed.worker",
                    "--ml-root",
                    str(self.paths.root),
                    "--algorithm",
                    self.algorithm,
                ]
            else:
                # Servers and the scheduler run inside `import mxnet` and exit there.
                command = [
                    sys.executable,
                    "-c",
                    "from sagemaker_cv.distributed.launcher import die_with_parent; die_with_parent(); import mxnet",
                ]
            process = subprocess.Popen(command, env=env, pass_fds=pass_fds)
            if name == "worker":
                os.close(write_fd)
                os.close(decision_read)
                self.reports = WorkerReports(read_fd, decision_fd=decision_write)
            self.roles[name] = Role(name, process)
            log.info("Started %s on host %s (pid %d)", name, self.me, process.pid)

    def _poll_roles(self) -> None:
        for role in self.roles.values():
            if role.exit_code is not None:
                continue
            code = role.process.poll()
            if code is None:
                continue
            role.exit_code = code
            if role.name == "worker":
                self._worker_exited(code)
            elif code != 0 and self.phase == "running" and not self.worker_done:
                raise self._fault(role.name, f"{describe_exit(code)} while training was running")
            else:
                log.info("%s on host %s %s", role.name, self.me, describe_exit(code))

    def _worker_exited(self, code: int) -> None:
        deadline = time.monotonic() + 2.0  # a grandchild could hold the pipe open: do not wait on it
        while self.reports.drain() and time.monotonic() < deadline:
            time.sleep(0.01)
        failure = self.reports.failure
        if failure:
            raise Abort(Fault(self.me, "worker", failure["kind"], failure["problems"]))
        if code != 0:
            if self.phase == "stopping" and self.reports.trained:
                return
            raise self._fault("worker", describe_exit(code))
        log.info("worker on host %s finished", self.me)
        self.worker_done = True
        if not self.primary:
            self.peers[self.hosts[0]].send({"type": "done"})

    def _signal_role(self, name: str, sig: int) -> None:
        role = self.roles.get(name)
        if role and role.exit_code is None and role.process.poll() is None:
            role.process.send_signal(sig)

    def _kill_all(self) -> None:
        for role in self.roles.values():
            if role.process.poll() is None:
                role.process.kill()
        for role in self.roles.values():
            role.process.wait()

    def _shutdown_roles(self, wait: float, escalate: float = 5.0) -> None:
        """After the worker: let the roles end on their own, then SIGTERM, then SIGKILL."""
        deadline = time.monotonic() + wait
        for sig in (None, signal.SIGTERM, signal.SIGKILL):
            if sig is not None:
                left = [r.name for r in self.roles.values() if r.process.poll() is None]
                log.info("Sending %s to %s on host %s", signal.Signals(sig).name, ", ".join(left), self.me)
                for name in self.roles:
                    self._signal_role(name, sig)
                deadline = time.monotonic() + escalate
            while time.monotonic() < deadline:
                if all(r.process.poll() is not None for r in self.roles.values()):
                    return
                time.sleep(0.1)

    # -- supervision --

    def _supervise(self) -> bool:
        while True:
            now = time.monotonic()
            if self.signalled and self.phase == "running":
                self._begin_stop(origin=self.me)
            self._read(timeout=0.2)
            self._poll_roles()
            self._beat(now)
            self._check_peers(now)
            outcome = self._check_end(now)
            if outcome is not None:
                return outcome

    def _read(self, timeout: float) -> None:
        sources: list = [c for c in self.peers.values() if not c.closed]
        if self.reports and not self.reports.eof:
            sources.append(self.reports.fd)
        readable, _, _ = select.select(sources, [], [], timeout)
        for item in readable:
            if isinstance(item, int):
                self.reports.drain()  # at end of file the worker's exit is handled by _poll_roles
                self._relay_decisions()
                continue
            messages = item.receive()
            if messages is None:
                self._peer_lost(item, "closed the control link")
                continue
            for message in messages:
                self._on_message(item, message)

    def _on_message(self, conn: Conn, message: dict) -> None:
        kind = message["type"]
        if kind == "beat":
            conn.active = message.get("active", True)
            conn.progress = message.get("progress", conn.progress)
        elif kind == "done":
            conn.done = True
        elif kind == "fail":
            fault = Fault(**message["fault"])
            log.error("Host %s reports: %s on host %s failed", conn.host, fault.role, fault.host)
            raise Abort(fault)
        elif kind == "abort":
            raise Abort(Fault(**message["fault"]))
        elif kind == "stop":
            if self.phase == "running":
                self._begin_stop(origin=conn.host)
        elif kind == "decision":
            self._pass_decision(message)
        elif kind == "finish":
            self.finish_received = True

    def _relay_decisions(self) -> None:
        """On hosts[0]: whether to stop after an epoch is decided where validation runs; every
        other worker waits for that decision at the end of the epoch (early stopping)."""
        while self.reports.decisions:
            message = self.reports.decisions.pop(0)
            for conn in self.peers.values():
                conn.send({"type": "decision", "epoch": message["epoch"], "stop": message["stop"]})

    def _pass_decision(self, message: dict) -> None:
        if self.reports and self.roles["worker"].process.poll() is None:
            line = json.dumps({"epoch": message["epoch"], "stop": message["stop"]}).encode() + b"\n"
            try:
                os.write(self.reports.decision_fd, line)
            except BrokenPipeError:
                pass  # the worker is gone; _poll_roles reports why

    def _peer_lost(self, conn: Conn, what: str) -> None:
        conn.close()
        if self.phase == "stopping" or (self.worker_done and not self.primary):
            log.info("Control link to %s ended (%s)", conn.host, what)
            self.finish_received = True
            return
        if self.primary and conn.done:
            return
        raise self._fault("launcher", what, host=conn.host)

    def _beat(self, now: float) -> None:
        if now - self.last_beat < BEAT_INTERVAL:
            return
        self.last_beat = now
        active = self._locally_active(now)
        for conn in self.peers.values():
            conn.send({"type": "beat", "active": active, "progress": self._progress_text(now)})
        if self.primary:
            if active or any(c.active for c in self.peers.values()):
                self.cluster_progress = now

    def _progress_text(self, now: float) -> str:
        r = self.reports
        if r is None or not r.started:
            return "not started"
        if self.worker_done:
            return "finished"
        return f"step {r.step} ({now - r.last_progress:.0f} s ago)"

    def _locally_active(self, now: float) -> bool:
        r = self.reports
        if r is None or self.worker_done:
            return not self.worker_done
        # Before the loop starts the worker prepares data alone; that is progress too.
        return not r.started or now - r.last_progress < 2 * BEAT_INTERVAL + 1

    def _check_peers(self, now: float) -> None:
        for conn in list(self.peers.values()):
            if conn.closed:
                continue
            if now - conn.heard > self.settings.peer_timeout:
                self._peer_lost(
                    conn,
                    f"sent no heartbeat for {now - conn.heard:.0f} s ({distributed.PEER_TIMEOUT_ENV})",
                )
        if (
            self.primary
            and self.phase == "running"
            and now - self.cluster_progress > self.settings.stall_timeout
        ):
            last = [f"{self.me} {self._progress_text(now)}"]
            last += [f"{h} {c.progress}" for h, c in self.peers.items()]
            raise self._fault(
                "launcher",
                f"no worker made progress for {now - self.cluster_progress:.0f} s ({distributed.STALL_TIMEOUT_ENV}) "
                f"although every process is alive, so training is blocked; last worker reports: {', '.join(last)}",
            )

    # -- stopping and finishing --

    def _begin_stop(self, origin: str) -> None:
        log.info(
            "Stopping (SIGTERM on host %s): the worker finishes its batch, then the primary saves", origin
        )
        self.phase = "stopping"
        self.stop_deadline = time.monotonic() + self.settings.stop_grace
        self._signal_role("worker", signal.SIGTERM)
        for host, conn in self.peers.items():
            if host != origin:
                conn.send({"type": "stop"})

    def _check_end(self, now: float) -> bool | None:
        if self.phase == "stopping":
            worker_gone = self.roles["worker"].process.poll() is not None
            # A worker stopped while preparing its data exits 0 without training: nothing to save.
            if self.primary and (self.reports.trained or self.worker_done):
                for conn in self.peers.values():  # the model is saved: nobody need wait any longer
                    conn.send({"type": "finish"})
                # Workers that stopped a batch apart wait for each other forever (in a push, or
                # in the exit barrier), and a blocked worker cannot even run its signal handler;
                # nothing is left to save, so every role is ended promptly.
                self._shutdown_roles(wait=2.0, escalate=2.0)
                return True
            if not self.primary and (self.finish_received or worker_gone):
                self._shutdown_roles(wait=2.0, escalate=2.0)
                return True
            if now > self.stop_deadline:
                if self.primary:
                    raise self._fault(
                        "worker",
                        f"did not save the model within {self.settings.stop_grace:.0f} s of SIGTERM "
                        f"({distributed.STOP_GRACE_ENV})",
                    )
                log.warning("The worker did not finish within %.0f s of SIGTERM", self.settings.stop_grace)
                self._shutdown_roles(wait=0.0)
                return True
            return None
        if not self.worker_done:
            return None
        if self.primary:
            if all(c.done for c in self.peers.values()):
                for conn in self.peers.values():
                    conn.send({"type": "finish"})
                self._shutdown_roles(wait=SHUTDOWN_WAIT)
                return False
            return None
        if self.finish_received:
            self._shutdown_roles(wait=SHUTDOWN_WAIT)
            return False
        return None

    def _broadcast_abort(self, fault: Fault) -> None:
        message = {"fault": fault.__dict__}
        if self.primary:
            for host, conn in self.peers.items():
                if host != fault.host:
                    conn.send({"type": "abort", **message})
        elif self.hosts[0] in self.peers and fault.host == self.me:
            self.peers[self.hosts[0]].send({"type": "fail", **message})


def run(paths: MLPaths, algorithm: str, resource: ResourceConfig) -> bool:
    """Train on this host as one of `resource.hosts`; True when stopped by SIGTERM."""
    settings = distributed.settings_from_env()
    return Launcher(paths, algorithm, resource, settings).run()
