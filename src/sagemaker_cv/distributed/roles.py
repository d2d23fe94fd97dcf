"""The processes one host runs for a multi-host job, as children of its launcher: the scheduler
(hosts[0] only) and a server, which live inside `import mxnet`, and the worker
(`sagemaker-cv _worker`, see distributed.worker), which trains and reports through a pipe.

Children ask the kernel to SIGKILL them when the launcher dies (PR_SET_PDEATHSIG), so even a
SIGKILLed launcher leaves no orphan.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sagemaker_cv.contract import logs
from sagemaker_cv.distributed import protocol

log = logs.get("launcher")

# Servers and the scheduler run inside `import mxnet` (its kvstore_server module) and exit there.
PS_ROLE_CODE = "from sagemaker_cv.distributed.roles import die_with_parent; die_with_parent(); import mxnet"


def die_with_parent() -> None:
    """In a child: have the kernel SIGKILL this process when the launcher dies (Linux)."""
    expected = os.environ.get(protocol.LAUNCHER_PID_ENV)
    if not expected or not sys.platform.startswith("linux"):
        return
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != int(expected):  # the launcher died before prctl took effect
        os._exit(1)


#: the CLI's hidden command that runs a worker (the entry point resolves the algorithm's name)
WORKER_COMMAND = "_worker"


def command(role: str, ml_root: Path, algorithm: str) -> list[str]:
    if role == "worker":
        return [
            sys.executable, "-m", "sagemaker_cv", WORKER_COMMAND,
            "--ml-root", str(ml_root), "--algorithm", algorithm,
        ]  # fmt: skip
    return [sys.executable, "-c", PS_ROLE_CODE]


class WorkerPipe:
    """The launcher's ends of the worker's two pipes: reports in (non-blocking), decisions out."""

    def __init__(self, report_fd: int, decision_fd: int):
        self.fd, self.decision_fd = report_fd, decision_fd
        self.reader = protocol.LineReader()
        self.eof = False

    def fileno(self) -> int:
        return self.fd

    def drain(self) -> list[dict]:
        """The events readable now; sets `eof` once the worker's end is closed."""
        if self.eof:
            return []
        try:
            chunk = os.read(self.fd, 65536)
        except BlockingIOError:
            return []
        if not chunk:
            self.eof = True
            return []
        return self.reader.feed(chunk)

    def drain_after_exit(self, limit: float = 2.0) -> list[dict]:
        """Everything the exited worker wrote; a grandchild could hold the pipe open, so bounded."""
        events, deadline = [], time.monotonic() + limit
        while not self.eof and time.monotonic() < deadline:
            got = self.drain()
            events += got
            if not got and not self.eof:
                time.sleep(0.01)
        return events

    def pass_decision(self, epoch: int, stop: bool) -> None:
        try:
            os.write(self.decision_fd, protocol.encode({"epoch": epoch, "stop": stop}))
        except (BrokenPipeError, OSError):
            pass  # the worker is gone; its exit is reported on its own

    def close(self) -> None:
        for fd in (self.fd, self.decision_fd):
            try:
                os.close(fd)
            except OSError:
                pass


@dataclass
class Role:
    name: str
    process: subprocess.Popen
    exit_code: int | None = None


class Roles:
    """This host's role processes, in start order."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.roles: dict[str, Role] = {}
        self.pipe: WorkerPipe | None = None

    def start(self, name: str, env: Mapping[str, str], ml_root: Path, algorithm: str) -> int:
        """Start one role with `env` (the DMLC_* variables included); returns its pid."""
        env = {**env, protocol.LAUNCHER_PID_ENV: str(os.getpid())}
        pass_fds: tuple[int, ...] = ()
        if name == "worker":
            report_read, report_write = os.pipe()
            os.set_blocking(report_read, False)
            decision_read, decision_write = os.pipe()
            env[protocol.REPORT_FD_ENV] = str(report_write)
            env[protocol.DECISION_FD_ENV] = str(decision_read)
            pass_fds = (report_write, decision_read)
        process = subprocess.Popen(command(name, ml_root, algorithm), env=env, pass_fds=pass_fds)
        if name == "worker":
            os.close(report_write)  # the worker holds the only write end: its exit is our EOF
            os.close(decision_read)
            self.pipe = WorkerPipe(report_read, decision_write)
        self.roles[name] = Role(name, process)
        return process.pid

    def exited(self) -> list[tuple[str, int]]:
        """Roles that exited since the last call, with their exit codes."""
        ended = []
        for role in self.roles.values():
            if role.exit_code is None:
                code = role.process.poll()
                if code is not None:
                    role.exit_code = code
                    ended.append((role.name, code))
        return ended

    def running(self) -> list[str]:
        return [r.name for r in self.roles.values() if r.process.poll() is None]

    def signal(self, name: str, sig: int) -> None:
        role = self.roles.get(name)
        if role and role.process.poll() is None:
            role.process.send_signal(sig)

    def end(self, wait: float, escalate: float = 5.0) -> None:
        """Let the roles exit on their own for `wait` seconds, then SIGTERM, then SIGKILL."""
        deadline = time.monotonic() + wait
        for sig in (None, signal.SIGTERM, signal.SIGKILL):
            if sig is not None:
                left = self.running()
                if not left:
                    return
                log.info("Sending %s to %s on host %s", signal.Signals(sig).name, ", ".join(left), self.host)
                for name in left:
                    self.signal(name, sig)
                deadline = time.monotonic() + escalate
            while time.monotonic() < deadline:
                if not self.running():
                    return
                time.sleep(0.1)

    def kill_all(self) -> None:
        for role in self.roles.values():
            if role.process.poll() is None:
                role.process.kill()
        for role in self.roles.values():
            role.process.wait()

    def close(self) -> None:
        if self.pipe:
            self.pipe.close()
