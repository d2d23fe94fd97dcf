"""The wire vocabulary of a multi-host job, in one place.

Two channels carry newline-delimited JSON objects:

* the report pipe, from the worker to its own launcher: `{"event": ...}` (WORKER_EVENTS);
* the control link, between the launcher on hosts[0] and every other launcher (TCP):
  `{"type": ...}` (LINK_MESSAGES);

plus a decision pipe from a launcher to its worker that carries only the primary's early-stopping
decisions. A failure travels as a `Fault`: where it started, the kind of error, the problems.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sagemaker_cv.contract.errors import AlgorithmError, ClientError

# ---- environment variables the launcher passes to its children ------------------------------------

LAUNCHER_PID_ENV = "SAGEMAKER_CV_LAUNCHER_PID"  # die_with_parent checks its parent is still this one
REPORT_FD_ENV = "SAGEMAKER_CV_REPORT_FD"  # the worker writes its events here
DECISION_FD_ENV = "SAGEMAKER_CV_DECISION_FD"  # the worker reads the primary's stop decisions here

# ---- worker -> launcher (report pipe), the "event" field ------------------------------------------

STARTED = "started"  # the training loop began (data checked, network built)
PROGRESS = "progress"  # a batch ended (`step`), or an epoch (`step`, `epoch`)
SYNCING = "syncing"  # an epoch ended: waiting for the parameter server's last update of it
SYNCED = "synced"  # that update arrived: the weights are this epoch's final ones
STOPPED = "stopped"  # a stop ended the loop after batch `step`; saving comes next
TRAINED = "trained"  # training ended; on the primary the model is on disk (`interrupted`, `step`)
FAILED = "failed"  # the worker raised: `kind`, `problems`
DECISION = "decision"  # the primary's early-stopping decision after an epoch: `epoch`, `stop`

WORKER_EVENTS = (STARTED, PROGRESS, SYNCING, SYNCED, STOPPED, TRAINED, FAILED, DECISION)

# ---- launcher <-> launcher (control link), the "type" field ---------------------------------------

HELLO = "hello"  # a host joins: `host`
START = "start"  # hosts[0] to all: every host joined, start the roles
BEAT = "beat"  # heartbeat, every second both ways: `active`, `progress`, `finished`
DONE = "done"  # a host's worker exited 0
FAIL = "fail"  # to hosts[0]: this host's processes failed: `fault`
ABORT = "abort"  # from hosts[0]: the job failed: `fault`
STOP = "stop"  # SIGTERM reached a host (`origin`): to hosts[0]; from hosts[0] once its worker
#                stopped after batch `step`: stop this host's worker
FINISH = "finish"  # from hosts[0]: the model is saved, end now (`promptly`: roles will not exit alone)
# DECISION, from hosts[0] to all: `epoch`, `stop`

LINK_MESSAGES = (HELLO, START, BEAT, DONE, FAIL, ABORT, STOP, FINISH, DECISION)


class ProtocolError(AlgorithmError):
    """A message that does not follow this module's vocabulary (a bug, or a stranger on the port)."""


def encode(message: Mapping[str, Any]) -> bytes:
    return json.dumps(message).encode() + b"\n"


class LineReader:
    """Turns a byte stream into JSON objects, keeping a partial last line for the next chunk."""

    def __init__(self) -> None:
        self.buffer = b""

    def feed(self, chunk: bytes) -> list[dict]:
        self.buffer += chunk
        *lines, self.buffer = self.buffer.split(b"\n")
        messages = []
        for line in lines:
            if not line.strip():
                continue
            try:
                message = json.loads(line)
            except ValueError as exc:
                raise ProtocolError(f"not a JSON line: {line[:80]!r} ({exc})") from None
            if not isinstance(message, dict):
                raise ProtocolError(f"expected a JSON object, got {line[:80]!r}")
            messages.append(message)
        return messages


# ---- faults ---------------------------------------------------------------------------------------


class DistributedTrainingError(AlgorithmError):
    """Another process of the job failed, died, hung or was lost."""


@dataclass(frozen=True)
class Fault:
    """Where a job failure started and why."""

    host: str
    role: str  # "launcher" | "scheduler" | "server" | "worker"
    kind: str  # "ClientError" | "AlgorithmError"
    problems: tuple[str, ...]

    @classmethod
    def of(cls, host: str, role: str, problem: str) -> Fault:
        """One of our own faults (AlgorithmError) with one problem."""
        return cls(host, role, "AlgorithmError", (problem,))

    @classmethod
    def from_exception(cls, exc: BaseException, host: str, role: str) -> Fault:
        """A user error stays a ClientError with its problems; anything else is ours."""
        if isinstance(exc, ClientError):
            return cls(host, role, "ClientError", tuple(exc.problems))
        return cls(host, role, "AlgorithmError", (f"{type(exc).__name__}: {exc}",))

    def to_wire(self) -> dict:
        return {"host": self.host, "role": self.role, "kind": self.kind, "problems": list(self.problems)}

    @classmethod
    def from_wire(cls, data: Any) -> Fault:
        try:
            fault = cls(data["host"], data["role"], data["kind"], tuple(data["problems"]))
        except (KeyError, TypeError) as exc:
            raise ProtocolError(f"malformed fault {data!r}: missing {exc}") from None
        if fault.kind not in ("ClientError", "AlgorithmError") or not fault.problems:
            raise ProtocolError(f"malformed fault {data!r}: expected a kind and at least one problem")
        return fault

    def as_error(self, here: str) -> Exception:
        """The exception this host's CLI turns into its failure file and exit code."""
        head = f"{self.role} on host {self.host}: {self.problems[0]}"
        if self.host != here:
            head += f" (host {here} stopped its own processes)"
        lines = [head, *self.problems[1:]]
        if self.kind == "ClientError":
            return ClientError(lines)
        return DistributedTrainingError("; ".join(lines))


def describe_exit(code: int) -> str:
    """`exited with code 3`, or for a negative (signal) code `was killed by SIGKILL`."""
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


# ---- what a launcher tells its supervisor (events) and is told to do (actions) ---------------------------------------------------------------------------------------


# The launcher turns what happened into events for supervisor.step, and carries out the actions
# it returns; both are plain data, so the supervisor's decisions are tested without processes.


@dataclass(frozen=True)
class Signalled:
    """SIGTERM or SIGINT reached the launcher."""


@dataclass(frozen=True)
class Unresolved:
    host: str
    detail: str


@dataclass(frozen=True)
class Resolved:
    primary_address: str


@dataclass(frozen=True)
class ListenFailed:
    detail: str


@dataclass(frozen=True)
class Connected:
    """This host's connection to hosts[0] is open."""


@dataclass(frozen=True)
class ConnectFailed:
    detail: str


@dataclass(frozen=True)
class Hello:
    conn: int  # the launcher's handle for a connection not yet named
    host: str


@dataclass(frozen=True)
class Received:
    host: str
    message: dict


@dataclass(frozen=True)
class LinkClosed:
    host: str


@dataclass(frozen=True)
class Reported:
    """An event from this host's worker (protocol.WORKER_EVENTS)."""

    event: dict


@dataclass(frozen=True)
class Exited:
    role: str
    code: int


# ---- actions --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Send:
    host: str
    message: dict


@dataclass(frozen=True)
class Listen:
    pass


@dataclass(frozen=True)
class Connect:
    pass


@dataclass(frozen=True)
class Accept:
    conn: int
    host: str


@dataclass(frozen=True)
class Reject:
    conn: int


@dataclass(frozen=True)
class StartRoles:
    pass


@dataclass(frozen=True)
class SignalRole:
    role: str
    signal: int


@dataclass(frozen=True)
class PassDecision:
    epoch: int
    stop: bool


@dataclass(frozen=True)
class EndRoles:
    wait: float
    escalate: float


@dataclass(frozen=True)
class Log:
    level: str  # "info" | "warning" | "error"
    text: str


@dataclass(frozen=True)
class Fail:
    fault: Fault


@dataclass(frozen=True)
class Interrupted:
    """Stopped before training started: the launcher ends as a stopped single host does (exit 0)."""


@dataclass(frozen=True)
class Finish:
    stopped: bool  # True: ended by SIGTERM (the primary saved); False: trained to the end
