"""What a launcher decides, as a pure function: `step(state, events, now) -> actions`.

The launcher (a thin shell around sockets and processes) turns what happened since its last look
into events (a signal, a host's hello, a message on the control link, a report from its worker, a
role that exited), calls `step` with the time, and carries out the actions (send, start or signal
processes, pass a decision on, end the roles, fail, finish). Nothing here touches a socket, a
process or the clock, so every fault the launcher handles is tested with plain data.

Phases: resolving (DNS) -> joining (the control link) -> running -> stopping (SIGTERM) -> ended.
ps-lite alone never notices a dead peer, so any role death, worker exception, lost host,
cluster-wide stall or blocked final synchronisation (the last three judged in `health`) becomes a
failure that hosts[0] relays to every host. A host other than hosts[0] exits 0 only once hosts[0]
said the model is saved.
"""

from __future__ import annotations

import signal
from typing import Any

from sagemaker_cv.distributed import health, plan
from sagemaker_cv.distributed import protocol as p
from sagemaker_cv.distributed.protocol import Fault
from sagemaker_cv.distributed.state import (
    ENDED,
    JOINING,
    RESOLVING,
    RUNNING,
    STOPPING,
    Peer,
    State,
    Worker,
)

SHUTDOWN_WAIT = 20.0  # after success: how long servers and scheduler get to exit on their own
EXIT_GRACE = 10.0  # once every worker trained: how long they get to pass the kvstore's exit barrier
STOP_WAIT = 2.0  # after a stop: nothing is left to save, so the roles are ended promptly

# The state lives in its own module (health reads it too); its names are part of this one's.
__all__ = ["ENDED", "JOINING", "RESOLVING", "RUNNING", "STOPPING", "Peer", "State", "Worker", "step"]


class _Failed(Exception):
    def __init__(self, fault: Fault):
        self.fault = fault


def step(state: State, events: list, now: float) -> list:
    """Apply `events` (in order) and the passing of time to `state`; return the actions to take."""
    if state.phase == ENDED:
        return []
    out: list = []
    try:
        for event in events:
            _on_event(state, event, now, out)
            if state.phase == ENDED:  # stopped before the start: the rest no longer matters
                return out
        _on_time(state, now, out)
    except _Failed as failed:
        out += _fail(state, failed.fault)
    return out


def _fault(state: State, problem: str, role: str = "launcher", host: str | None = None) -> _Failed:
    return _Failed(Fault.of(host or state.me, role, problem))


def _fail(state: State, fault: Fault) -> list:
    """Tell the others (hosts[0] tells everyone but the origin; another host tells hosts[0] about
    its own faults), then fail here."""
    state.phase = ENDED
    out: list = []
    message = {"type": p.ABORT if state.primary else p.FAIL, "fault": fault.to_wire()}
    for host, peer in state.peers.items():
        if peer.closed or host == fault.host:
            continue
        if state.primary or fault.host == state.me:
            out.append(p.Send(host, message))
    return [*out, p.Fail(fault)]


def _stop_before_start(state: State, origin: str) -> list:
    """A stop before the roles started is no failure (exit 0, as a single host stopped while
    preparing): the hosts already linked are told to stop too, and nothing was written."""
    state.phase = ENDED
    stop = {"type": p.STOP}
    told = [p.Send(h, stop) for h, peer in state.peers.items() if h != origin and not peer.closed]
    return [*told, p.Interrupted()]


# ---- events ---------------------------------------------------------------------------------------


def _on_event(state: State, event: Any, now: float, out: list) -> None:
    s = state.settings
    if isinstance(event, p.Signalled):
        if state.phase in (RESOLVING, JOINING):
            out += _stop_before_start(state, state.me)
        elif state.phase == RUNNING:
            _begin_stop(state, state.me, now, out)
    elif isinstance(event, p.Unresolved):
        roles = " and ".join(plan.roles_for(event.host, state.hosts))
        raise _fault(state, f"{event.detail}; that host runs the {roles}")
    elif isinstance(event, p.Resolved):
        state.phase, state.deadline = JOINING, now + s.rendezvous_timeout
        state.primary_address = event.primary_address
        if state.primary:
            out.append(p.Listen())
    elif isinstance(event, p.ListenFailed):
        raise _fault(
            state,
            f"cannot listen on the control port {s.control_port} ({plan.CONTROL_PORT_ENV}): {event.detail}",
        )
    elif isinstance(event, p.Connected):
        state.linked = True
        state.peers[state.hosts[0]] = Peer(heard=now)
        out.append(p.Send(state.hosts[0], {"type": p.HELLO, "host": state.me}))
    elif isinstance(event, p.ConnectFailed):
        state.last_error = event.detail
    elif isinstance(event, p.Hello):
        if state.phase == JOINING and event.host in state.hosts[1:] and event.host not in state.peers:
            state.peers[event.host] = Peer(heard=now)
            out += [p.Accept(event.conn, event.host), p.Log("info", f"Host {event.host} joined")]
        else:
            expected = ", ".join(state.hosts[1:])
            out += [
                p.Reject(event.conn),
                p.Log(
                    "warning",
                    f"Control link: ignoring a hello from {event.host!r} (expected one of {expected})",
                ),
            ]
    elif isinstance(event, p.Received):
        _on_message(state, event.host, event.message, now, out)
    elif isinstance(event, p.LinkClosed):
        if state.phase == JOINING:
            raise _fault(state, "closed the control link before training started", host=event.host)
        _peer_lost(state, event.host, "closed the control link", out)
    elif isinstance(event, p.Reported):
        _on_report(state, event.event, now, out)
    elif isinstance(event, p.Exited):
        _on_exit(state, event.role, event.code, out)
    else:
        raise TypeError(f"not a supervisor event: {event!r}")


def _on_message(state: State, host: str, message: dict, now: float, out: list) -> None:
    peer = state.peers.get(host)
    if peer is None or peer.closed:  # a peer already given up on (silent too long)
        return
    peer.heard = now
    kind = message.get("type")
    if kind == p.START and state.phase == JOINING and not state.primary:
        _start(state, now, out)
    elif kind == p.BEAT:
        peer.active = bool(message.get("active", True))
        peer.progress = str(message.get("progress", peer.progress))
        if message.get("finished") and peer.finished_at is None:
            peer.finished_at = now
    elif kind == p.DONE:
        peer.done = True
        peer.finished_at = peer.finished_at if peer.finished_at is not None else now
    elif kind == p.FAIL:
        fault = Fault.from_wire(message.get("fault"))
        out.append(p.Log("error", f"Host {host} reports: {fault.role} on host {fault.host} failed"))
        raise _Failed(fault)
    elif kind == p.ABORT:
        raise _Failed(Fault.from_wire(message.get("fault")))
    elif kind == p.STOP:
        if state.phase == JOINING:
            out += _stop_before_start(state, host)
        elif state.phase == RUNNING:
            _begin_stop(state, str(message.get("origin", host)), now, out, message)
        elif state.phase == STOPPING and not state.primary:  # hosts[0]'s worker stopped: now this one
            _signal_worker(state, message, out)
    elif kind == p.DECISION:
        if not state.worker.exited:
            out.append(p.PassDecision(int(message["epoch"]), bool(message["stop"])))
    elif kind == p.FINISH:
        state.finish_received, state.end_promptly = True, bool(message.get("promptly"))


def _on_report(state: State, event: dict, now: float, out: list) -> None:
    w = state.worker
    w.last_report = now
    w.step = int(event.get("step", w.step))
    kind = event.get("event")
    if kind == p.STARTED:
        w.started, w.kvstore = True, event.get("kvstore")
    elif kind == p.PROGRESS and "epoch" not in event:  # a batch
        w.validating = False
    elif kind == p.SYNCING:
        w.syncing, w.validating = int(event.get("epoch", 0)), False
    elif kind == p.SYNCED:
        w.syncing, w.validating = None, True
    elif kind == p.STOPPED:
        w.stopped = True
    elif kind == p.TRAINED:
        w.trained, w.trained_at, w.syncing = True, now, None
    elif kind == p.FAILED:
        w.failure = Fault(state.me, "worker", event["kind"], tuple(event["problems"]))
    elif kind == p.DECISION:
        # Whether to stop after an epoch is decided where validation runs (hosts[0]); every other
        # worker waits for it at the end of the epoch (early stopping).
        message = {"type": p.DECISION, "epoch": event["epoch"], "stop": event["stop"]}
        out += [p.Send(h, message) for h, peer in state.peers.items() if not peer.closed]


def _on_exit(state: State, role: str, code: int, out: list) -> None:
    w = state.worker
    if role == "worker":
        w.exited = True
        if w.failure:
            raise _Failed(w.failure)
        if code != 0:
            if state.phase == STOPPING and w.trained:
                out.append(p.Log("info", f"worker on host {state.me} {p.describe_exit(code)} after saving"))
                return
            raise _fault(state, p.describe_exit(code), role="worker")
        w.done = True
        out.append(p.Log("info", f"worker on host {state.me} finished"))
        if not state.primary:
            out.append(p.Send(state.hosts[0], {"type": p.DONE}))
    elif code != 0 and state.phase == RUNNING and not w.done:
        raise _fault(state, f"{p.describe_exit(code)} while training was running", role=role)
    else:
        out.append(p.Log("info", f"{role} on host {state.me} {p.describe_exit(code)}"))


def _peer_lost(state: State, host: str, what: str, out: list) -> None:
    peer = state.peers[host]
    peer.closed = True
    if state.primary:
        if peer.done or state.phase == STOPPING:
            out.append(p.Log("info", f"Control link to {host} ended ({what})"))
            return
        raise _fault(state, what, host=host)
    if state.finish_received:
        out.append(p.Log("info", f"Control link to {host} ended ({what})"))
        return
    # hosts[0] always says `finish` before it ends; without it the model may not be saved.
    if state.worker.done or state.phase == STOPPING:
        what += " before it confirmed that the model was saved"
    raise _fault(state, what, host=host)


def _start(state: State, now: float, out: list) -> None:
    state.phase, state.cluster_progress = RUNNING, now
    out.append(p.StartRoles())


def _begin_stop(state: State, origin: str, now: float, out: list, message: dict | None = None) -> None:
    """Every worker must stop after the same batch. With dist_sync a worker that stopped one batch
    ahead of another waits forever for the other's gradients of that batch: its last update never
    completes, and reading the weights to save them blocks until the stop grace runs out. So the
    worker on hosts[0] stops first; the others keep training until it reported the batch it
    stopped after (`_release_stop`), which they cannot pass, so they have sent its gradients."""
    state.phase, state.deadline, state.stop_origin = STOPPING, now + state.settings.stop_grace, origin
    out.append(
        p.Log(
            "info",
            f"Stopping (SIGTERM on host {origin}): the primary's worker finishes its batch, then every "
            "worker stops after that batch and the primary saves",
        )
    )
    if state.primary:
        state.worker_signalled = True
        out.append(p.SignalRole("worker", signal.SIGTERM))
    elif origin == state.me:
        out.append(p.Send(state.hosts[0], {"type": p.STOP, "origin": origin}))
    else:  # hosts[0]'s `stop`: its worker stopped already
        _signal_worker(state, message or {}, out)


def _signal_worker(state: State, message: dict, out: list) -> None:
    if state.worker_signalled:
        return
    state.worker_signalled = True
    if "step" in message:
        out.append(p.Log("info", f"The primary's worker stopped after step {message['step']}; stopping ours"))
    out.append(p.SignalRole("worker", signal.SIGTERM))


def _release_stop(state: State, out: list) -> None:
    """hosts[0]: once its worker stopped (or ended), tell the other hosts to stop theirs."""
    w = state.worker
    if state.stop_released or not (w.stopped or w.trained or w.exited):
        return
    state.stop_released = True
    message = {"type": p.STOP, "origin": state.stop_origin, "step": w.step}
    out += [p.Send(h, message) for h, peer in state.peers.items() if not peer.closed]


# ---- time -----------------------------------------------------------------------------------------


def _on_time(state: State, now: float, out: list) -> None:
    if state.phase == JOINING:
        _join(state, now, out)
    if state.phase in (RUNNING, STOPPING):
        out += health.beat(state, now)
        for host, silence in health.silent_peers(state, now):
            _peer_lost(state, host, silence, out)
        if state.phase == RUNNING and state.primary:
            for problem in (health.stall(state, now), health.final_sync(state, now)):
                if problem:
                    raise _fault(state, problem)
        _check_end(state, now, out)


def _join(state: State, now: float, out: list) -> None:
    s, first = state.settings, state.hosts[0]
    limit = f"{s.rendezvous_timeout:.0f} s ({plan.RENDEZVOUS_TIMEOUT_ENV})"
    if state.primary:
        missing = [h for h in state.hosts[1:] if h not in state.peers]
        if not missing:
            out += [p.Send(h, {"type": p.START}) for h in state.hosts[1:]]
            out.append(p.Log("info", f"All {len(state.hosts)} hosts joined; starting the parameter server"))
            _start(state, now, out)
        elif now > state.deadline:
            raise _fault(state, f"host(s) {', '.join(missing)} did not join within {limit}", host=missing[0])
    elif not state.linked:
        if now > state.deadline:
            raise _fault(
                state,
                f"the launcher on {first} did not accept a connection at {state.primary_address}:"
                f"{s.control_port} within {limit}; last error: {state.last_error}",
                host=first,
            )
        out.append(p.Connect())
    elif now > state.deadline:
        raise _fault(state, f"not every host joined within {limit}", host=first)


def _check_end(state: State, now: float, out: list) -> None:
    w, s = state.worker, state.settings
    finish = [p.Send(h, {"type": p.FINISH}) for h, peer in state.peers.items() if not peer.closed]
    if state.phase == STOPPING:
        if state.primary:
            _release_stop(state, out)
        # Workers that stopped a batch apart wait for each other forever (in a push, or in the
        # exit barrier), and a blocked worker cannot even run its signal handler; once the model
        # is saved nothing is left to do, so every role is ended promptly.
        # A worker stopped while preparing its data exits 0 without training: nothing to save.
        if state.primary and (w.trained or w.done):
            out += [*finish, p.EndRoles(STOP_WAIT, STOP_WAIT), p.Finish(stopped=True)]
        elif not state.primary and state.finish_received:
            out += [p.EndRoles(STOP_WAIT, STOP_WAIT), p.Finish(stopped=True)]
        elif now > state.deadline:
            grace = f"{s.stop_grace:.0f} s of SIGTERM ({plan.STOP_GRACE_ENV})"
            if state.primary:
                raise _fault(state, f"did not save the model within {grace}", role="worker")
            raise _fault(
                state, f"did not confirm within {grace} that the model was saved", host=state.hosts[0]
            )
        else:
            return
        state.phase = ENDED
    elif state.primary:
        if w.done and all(peer.done for peer in state.peers.values()):
            out += [*finish, p.EndRoles(SHUTDOWN_WAIT, 5.0), p.Finish(stopped=False)]
            state.phase = ENDED
            return
        # Every worker trained and the model is saved, but not every worker exited: the kvstore's
        # exit barrier waits for a worker that is gone. Nothing is left to do, so end them.
        finished = [peer.finished_at for peer in state.peers.values()]
        if (
            w.trained
            and not w.exited
            and None not in finished
            and now - max(w.trained_at, *finished) > EXIT_GRACE
        ):
            waited = f"saved the model but did not exit within {EXIT_GRACE:.0f} s; ending it"
            promptly = [p.Send(a.host, {**a.message, "promptly": True}) for a in finish]
            out += [p.Log("warning", f"worker on host {state.me} {waited}"), *promptly]
            out += [p.EndRoles(STOP_WAIT, STOP_WAIT), p.Finish(stopped=False)]
            state.phase = ENDED
    elif state.finish_received and (w.done or w.trained):
        wait = STOP_WAIT if state.end_promptly else SHUTDOWN_WAIT
        out += [p.EndRoles(wait, 5.0), p.Finish(stopped=False)]
        state.phase = ENDED
