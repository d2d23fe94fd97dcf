"""What a launcher knows about its job: the supervisor's state (phase, peers, its own worker),
changed only by `supervisor.step` and read by `health`."""

from __future__ import annotations

from dataclasses import dataclass, field

from sagemaker_cv.distributed import plan
from sagemaker_cv.distributed.protocol import Fault

RESOLVING, JOINING, RUNNING, STOPPING, ENDED = "resolving", "joining", "running", "stopping", "ended"


# ---- state ----------------------------------------------------------------------------------------


@dataclass
class Peer:
    """Another host, as its messages describe it."""

    heard: float
    active: bool = True  # its worker made progress lately (or is still preparing data)
    progress: str = "not started"  # its worker's last report, for the stall message
    finished_at: float | None = None  # when its worker said it finished training
    done: bool = False  # its worker exited 0
    closed: bool = False


@dataclass
class Worker:
    """This host's worker, as its reports describe it."""

    started: bool = False
    kvstore: str | None = None
    step: int = 0
    last_report: float = 0.0
    syncing: int | None = None  # the epoch whose end it waits for the servers at
    validating: bool = False  # between an epoch's synchronisation and the next batch
    stopped: bool = False  # a stop ended its loop after batch `step` (it saves next, on hosts[0])
    trained: bool = False
    trained_at: float = 0.0
    failure: Fault | None = None
    exited: bool = False
    done: bool = False  # exited 0


@dataclass
class State:
    me: str
    hosts: tuple[str, ...]
    settings: plan.Settings
    phase: str = RESOLVING
    peers: dict[str, Peer] = field(default_factory=dict)  # hosts[0]: every other host; else hosts[0]
    worker: Worker = field(default_factory=Worker)
    primary_address: str = ""
    linked: bool = False  # another host: connected to hosts[0] and said hello
    last_error: str = ""  # why the last connection attempt failed
    deadline: float = 0.0  # the rendezvous deadline, then the stop deadline
    stop_origin: str = ""  # the host SIGTERM reached
    stop_released: bool = False  # hosts[0]: the other hosts were told to stop their workers
    worker_signalled: bool = False
    finish_received: bool = False
    end_promptly: bool = False  # hosts[0] said the roles will not exit on their own
    last_beat: float = float("-inf")
    cluster_progress: float = 0.0  # on hosts[0]: when a worker anywhere last made progress

    @property
    def primary(self) -> bool:
        return self.me == self.hosts[0]
