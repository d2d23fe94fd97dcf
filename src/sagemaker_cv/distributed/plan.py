"""Multi-host training over MXNet's parameter server: the launch plan, host resolution, settings.

Topology, as SageMaker's own MXNet container lays it out: the scheduler runs on `hosts[0]`, every
host runs one server and one worker (the trainer), so DMLC_NUM_SERVER = DMLC_NUM_WORKER = hosts.
Everything here is pure or takes its side effects (DNS lookup, clock, sleep) as arguments; the
processes themselves are started and watched by `sagemaker_cv.distributed.launcher`.

Settings are environment variables, not hyperparameters (the hyperparameter schema is the
built-in's); all are optional:

    SAGEMAKER_CV_PS_PORT               scheduler port (DMLC_PS_ROOT_PORT), default 8000
    SAGEMAKER_CV_CONTROL_PORT          the launchers' own link to hosts[0], default PS port + 1
    SAGEMAKER_CV_HOST_RESOLVE_TIMEOUT  seconds to keep retrying DNS for every host, default 900
    SAGEMAKER_CV_RENDEZVOUS_TIMEOUT    seconds for every host's launcher to join, default 900
    SAGEMAKER_CV_PEER_TIMEOUT          seconds without a heartbeat before a host counts as lost, 30
    SAGEMAKER_CV_STALL_TIMEOUT         seconds in which no worker anywhere made progress, default 1800
    SAGEMAKER_CV_STOP_GRACE            seconds a worker has to save after SIGTERM, default 90
    SAGEMAKER_CV_HOST_MAP              testing only: 'algo-1=127.0.0.1,algo-2=127.0.0.1' replaces DNS
                                       for the hosts it names
"""

from __future__ import annotations

import ipaddress
import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from sagemaker_cv.contract.errors import AlgorithmError, ClientError

ROLES = ("scheduler", "server", "worker")
DEFAULT_PS_PORT = 8000

PS_PORT_ENV = "SAGEMAKER_CV_PS_PORT"
CONTROL_PORT_ENV = "SAGEMAKER_CV_CONTROL_PORT"
RESOLVE_TIMEOUT_ENV = "SAGEMAKER_CV_HOST_RESOLVE_TIMEOUT"
RENDEZVOUS_TIMEOUT_ENV = "SAGEMAKER_CV_RENDEZVOUS_TIMEOUT"
PEER_TIMEOUT_ENV = "SAGEMAKER_CV_PEER_TIMEOUT"
STALL_TIMEOUT_ENV = "SAGEMAKER_CV_STALL_TIMEOUT"
STOP_GRACE_ENV = "SAGEMAKER_CV_STOP_GRACE"
HOST_MAP_ENV = "SAGEMAKER_CV_HOST_MAP"


# ---- the launch plan -----------------------------------------------------------------------------


def scheduler_host(hosts: Sequence[str]) -> str:
    """hosts[0], as resourceconfig.json orders them (SageMaker sorts them)."""
    return hosts[0]


def roles_for(host: str, hosts: Sequence[str]) -> tuple[str, ...]:
    """The processes `host` runs, in start order: the scheduler first, since the others dial it."""
    if host not in hosts:
        raise ValueError(f"host {host!r} is not one of hosts {list(hosts)}")
    return ("scheduler", "server", "worker") if host == scheduler_host(hosts) else ("server", "worker")


def dmlc_env(
    role: str,
    hosts_ips: Sequence[str],
    port: int,
    *,
    interface: str | None = None,
    node_host: str | None = None,
    verbose: int | None = None,
) -> dict[str, str]:
    """The DMLC_* variables for one role process.

    `hosts_ips` are the hosts' addresses in resourceconfig order; the scheduler binds the first,
    which must be an IP address (ps-lite cannot bind a host name). A server or worker binds the
    address of `interface` (resourceconfig's network_interface_name) when given, else `node_host`
    (this host's own resolved address). Without either ps-lite takes the first non-loopback
    interface, which is wrong on multi-homed hosts, so one of them is required.
    """
    if role not in ROLES:
        raise ValueError(f"role {role!r}: expected one of {', '.join(ROLES)}")
    if not hosts_ips:
        raise ValueError("hosts_ips is empty: expected one address per host")
    if not 0 < port < 65536:
        raise ValueError(f"port={port}: expected 1..65535")
    env = {
        "DMLC_ROLE": role,
        "DMLC_PS_ROOT_URI": hosts_ips[0],
        "DMLC_PS_ROOT_PORT": str(port),
        "DMLC_NUM_SERVER": str(len(hosts_ips)),
        "DMLC_NUM_WORKER": str(len(hosts_ips)),
    }
    if role != "scheduler":
        if interface:
            env["DMLC_INTERFACE"] = interface
        elif node_host:
            env["DMLC_NODE_HOST"] = node_host
        else:
            raise ValueError(f"role {role!r} needs an interface or this host's address (node_host)")
    if verbose:
        env["PS_VERBOSE"] = str(verbose)
    return env


@dataclass(frozen=True)
class Binding:
    """How this host's server and worker choose the address they bind (dmlc_env's arguments)."""

    interface: str | None = None
    node_host: str | None = None
    note: str | None = None  # why the named interface was not used, for the log


def choose_binding(interface: str | None, interface_address: str | None, own_address: str) -> Binding:
    """Bind `interface` (resourceconfig.json network_interface_name) when it has an IPv4 address
    here, else this host's own resolved address. SDK v3 local mode names `ethwe`, which its
    containers do not have, and ps-lite would die with `failed to get ip`; SageMaker's MXNet
    container never sets the interface at all."""
    if not interface:
        return Binding(node_host=own_address)
    if interface_address:
        return Binding(interface=interface)
    return Binding(
        node_host=own_address,
        note=(
            f"network interface {interface!r} (resourceconfig.json network_interface_name) has no IPv4 "
            f"address on this host; binding the parameter server's ports to this host's own address "
            f"{own_address} instead"
        ),
    )


# ---- settings ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    ps_port: int = DEFAULT_PS_PORT
    control_port: int = DEFAULT_PS_PORT + 1
    resolve_timeout: float = 900.0  # SageMaker's DNS can lag the containers by minutes
    rendezvous_timeout: float = 900.0
    peer_timeout: float = 30.0
    stall_timeout: float = 1800.0  # must exceed the longest validation pass on the primary
    stop_grace: float = 90.0  # docker stop sends SIGKILL after 120 s
    host_map: Mapping[str, str] = field(default_factory=dict)


def _number(environ: Mapping[str, str], name: str, default: float, problems: list[str], *, integer=False):
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        value = None
    if value is None or value <= 0:
        problems.append(f"{name}={raw!r}: expected a positive {'integer' if integer else 'number'}")
        return default
    return value


def parse_host_map(text: str) -> dict[str, str]:
    """'algo-1=127.0.0.1,algo-2=127.0.0.1' -> {'algo-1': '127.0.0.1', 'algo-2': '127.0.0.1'}."""
    mapping, problems = {}, []
    for entry in filter(None, (e.strip() for e in text.split(","))):
        host, sep, address = (p.strip() for p in entry.partition("="))
        try:
            if not (host and sep):
                raise ValueError
            ipaddress.IPv4Address(address)
        except ValueError:
            problems.append(
                f"{HOST_MAP_ENV} entry {entry!r}: expected host=IPv4 address, e.g. algo-1=127.0.0.1"
            )
            continue
        mapping[host] = address
    if problems:
        raise ClientError(problems)
    return mapping


def settings_from_env(environ: Mapping[str, str] | None = None) -> Settings:
    environ = os.environ if environ is None else environ
    problems: list[str] = []
    ps_port = _number(environ, PS_PORT_ENV, DEFAULT_PS_PORT, problems, integer=True)
    control_port = _number(environ, CONTROL_PORT_ENV, ps_port + 1, problems, integer=True)
    for name, value in ((PS_PORT_ENV, ps_port), (CONTROL_PORT_ENV, control_port)):
        if value > 65535:
            problems.append(f"{name}={value}: expected a port in 1..65535")
    if ps_port == control_port:
        problems.append(f"{CONTROL_PORT_ENV}={control_port}: must differ from {PS_PORT_ENV}={ps_port}")
    host_map: dict[str, str] = {}
    try:
        host_map = parse_host_map(environ.get(HOST_MAP_ENV, ""))
    except ClientError as exc:
        problems.extend(exc.problems)
    settings = Settings(
        ps_port=ps_port,
        control_port=control_port,
        resolve_timeout=_number(environ, RESOLVE_TIMEOUT_ENV, Settings.resolve_timeout, problems),
        rendezvous_timeout=_number(environ, RENDEZVOUS_TIMEOUT_ENV, Settings.rendezvous_timeout, problems),
        peer_timeout=_number(environ, PEER_TIMEOUT_ENV, Settings.peer_timeout, problems),
        stall_timeout=_number(environ, STALL_TIMEOUT_ENV, Settings.stall_timeout, problems),
        stop_grace=_number(environ, STOP_GRACE_ENV, Settings.stop_grace, problems),
        host_map=host_map,
    )
    if problems:
        raise ClientError(problems)
    return settings


# ---- host resolution -----------------------------------------------------------------------------


class HostResolutionError(AlgorithmError):
    def __init__(self, host: str, waited: float, error: BaseException | None):
        self.host = host
        super().__init__(
            f"host {host!r} did not resolve to an address within {waited:.0f} s "
            f"({RESOLVE_TIMEOUT_ENV}); last error: {error}"
        )


def backoff_delays(first: float = 0.1, cap: float = 30.0) -> Callable[[], float]:
    """Exponential back-off as SageMaker's MXNet container uses it: 0.1 s, doubling, capped."""
    state = {"next": first}

    def delay() -> float:
        value = state["next"]
        state["next"] = min(cap, value * 2)
        return value

    return delay


def resolve_hosts(
    hosts: Sequence[str],
    *,
    timeout: float,
    host_map: Mapping[str, str] | None = None,
    lookup: Callable[[str], str] = socket.gethostbyname,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    on_retry: Callable[[str, BaseException, float], None] | None = None,
) -> dict[str, str]:
    """Every host's IPv4 address, retrying with back-off until `timeout` seconds have passed.

    Raises HostResolutionError naming the first host that never resolved."""
    host_map = host_map or {}
    deadline = clock() + timeout
    started = clock()
    addresses: dict[str, str] = {}
    for host in hosts:
        if host in host_map:
            addresses[host] = host_map[host]
            continue
        delay = backoff_delays()
        while True:
            try:
                addresses[host] = lookup(host)
                break
            except OSError as exc:  # socket.gaierror, socket.herror
                remaining = deadline - clock()
                if remaining <= 0:
                    raise HostResolutionError(host, clock() - started, exc) from None
                wait = min(delay(), remaining)
                if on_retry:
                    on_retry(host, exc, wait)
                sleep(wait)
    return addresses
