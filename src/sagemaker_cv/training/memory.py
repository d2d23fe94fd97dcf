"""How much memory the host has, and whether a training job's estimate fits it (framework-free).

An algorithm estimates what its network needs for one step from the hyperparameters (measured
bytes per input pixel, `algorithms/*/limits.py`); a job that needs more than the host (or its
container's cgroup limit) has is refused before anything is built, naming the estimate and what
to lower, rather than swapping, being killed by the kernel without a failure file, or crashing
in an allocation MXNet does not check. An estimate above the memory available now only warns:
other processes may free theirs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

GIB = 1 << 30
_CGROUP_LIMITS = (
    Path("/sys/fs/cgroup/memory.max"),  # cgroup v2
    Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),  # cgroup v1
)


@dataclass(frozen=True)
class HostMemory:
    total: int | None  # bytes: MemTotal, or the cgroup's limit when lower
    available: int | None  # bytes: MemAvailable


def _meminfo(path: Path) -> dict[str, int]:
    values = {}
    try:
        for line in path.read_text().splitlines():
            name, _, rest = line.partition(":")
            parts = rest.split()
            if parts and parts[0].isdigit():
                values[name] = int(parts[0]) * (1024 if parts[-1] == "kB" else 1)
    except OSError:
        pass
    return values


def host_memory(meminfo: Path = Path("/proc/meminfo"), limits=_CGROUP_LIMITS) -> HostMemory:
    info = _meminfo(meminfo)
    total, available = info.get("MemTotal"), info.get("MemAvailable")
    for path in limits:
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text.isdigit() and (total is None or int(text) < total):  # "max": no limit
            total = int(text)
            available = min(available, total) if available is not None else None
    return HostMemory(total, available)


def gib(size: float) -> str:
    return f"{size / GIB:.1f} GB"


def fit(needed: int, what: str, fix: str, memory: HostMemory) -> tuple[list[str], list[str]]:
    """(problems, warnings) for a step estimated to need `needed` bytes: a problem above the
    host's total memory, a warning above what is available now."""
    if memory.total is not None and needed > memory.total:
        return [
            f"{what} needs at least about {gib(needed)} of memory for one training step, more than this host's "
            f"{gib(memory.total)}; {fix}, or use an instance with more memory"
        ], []
    if memory.available is not None and needed > memory.available:
        return [], [
            f"{what} needs about {gib(needed)} of memory for one training step; {gib(memory.available)} is "
            "available now: the job may run out of memory"
        ]
    return [], []
