"""How a launcher tells a slow job from a blocked one, as pure functions of the supervisor's
state and the time: heartbeats, silent hosts, the cluster-wide stall, and the primary's final
synchronisation once every other worker has finished. Each returns data (messages to send, a
problem to fail with); the supervisor decides what to do with it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sagemaker_cv.distributed import plan
from sagemaker_cv.distributed import protocol as p

if TYPE_CHECKING:
    from sagemaker_cv.distributed.state import State

BEAT_INTERVAL = 1.0  # seconds between heartbeats


def locally_active(state: State, now: float) -> bool:
    """This host's worker made progress lately (one report per batch)."""
    w = state.worker
    if w.done or w.trained:
        return False
    # Before the loop starts the worker prepares data alone; that is progress too.
    return not w.started or now - w.last_report < 2 * BEAT_INTERVAL + 1


def progress_text(state: State, now: float) -> str:
    w = state.worker
    if not w.started:
        return "not started"
    if w.trained or w.done:
        return "finished"
    return f"step {w.step} ({now - w.last_report:.0f} s ago)"


def beat(state: State, now: float) -> list:
    """A heartbeat to every host once a second, with this worker's state; on hosts[0] it also
    notes when a worker anywhere last made progress."""
    if now - state.last_beat < BEAT_INTERVAL:
        return []
    state.last_beat = now
    active = locally_active(state, now)
    message = {
        "type": p.BEAT,
        "active": active,
        "progress": progress_text(state, now),
        "finished": state.worker.trained or state.worker.done,
    }
    if state.primary and (active or any(peer.active for peer in state.peers.values())):
        state.cluster_progress = now
    return [p.Send(h, message) for h, peer in state.peers.items() if not peer.closed]


def silent_peers(state: State, now: float) -> list[tuple[str, str]]:
    """(host, why) for every host not heard from within the peer timeout."""
    timeout = state.settings.peer_timeout
    return [
        (host, f"sent no heartbeat for {now - peer.heard:.0f} s ({plan.PEER_TIMEOUT_ENV})")
        for host, peer in state.peers.items()
        if not peer.closed and now - peer.heard > timeout
    ]


def stall(state: State, now: float) -> str | None:
    """On hosts[0]: no worker anywhere made progress within the stall deadline."""
    idle = now - state.cluster_progress
    if idle <= state.settings.stall_timeout:
        return None
    last = [f"{state.me} {progress_text(state, now)}"]
    last += [f"{h} {peer.progress}" for h, peer in state.peers.items()]
    return (
        f"no worker made progress for {idle:.0f} s ({plan.STALL_TIMEOUT_ENV}) although every process "
        f"is alive, so training is blocked; last worker reports: {', '.join(last)}"
    )


def final_sync(state: State, now: float) -> str | None:
    """On hosts[0], with dist_sync: a worker finishes only once the servers answered its last
    push, which they do only with every worker's gradients for that step. So once every other
    worker has finished, the primary's worker needs nothing more from anyone until it has
    synchronised its last epoch: a longer wait than a lost heartbeat means gradients of a finished
    worker never reached the servers, and they would wait for them forever. Its validation and
    saving afterwards are its own work, bounded only by the stall deadline."""
    w = state.worker
    finished = [peer.finished_at for peer in state.peers.values()]
    if w.kvstore != "dist_sync" or w.validating or w.trained or not finished or None in finished:
        return None
    waited = now - max(w.last_report, *finished)
    if waited <= state.settings.peer_timeout:
        return None
    where = f"at the end of epoch {w.syncing}" if w.syncing is not None else f"after step {w.step}"
    return (
        f"the worker has waited {waited:.0f} s ({plan.PEER_TIMEOUT_ENV}) {where} for the parameter "
        "server although every other host's worker had finished training: gradients of a finished "
        "worker never reached the servers"
    )
