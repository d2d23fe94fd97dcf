"""The launcher's decisions as plain data: events and a time in, actions out (supervisor.step).

Each fault the loopback tests in tests/integration/test_distributed_training.py inject has its
decision here, asserted action by action."""

from __future__ import annotations

import signal

import pytest

from sagemaker_cv.distributed import plan
from sagemaker_cv.distributed import protocol as p
from sagemaker_cv.distributed import supervisor as sv
from sagemaker_cv.distributed.protocol import Fault

SETTINGS = plan.Settings(rendezvous_timeout=60, peer_timeout=30, stall_timeout=100, stop_grace=90)
HOSTS = ("algo-1", "algo-2", "algo-3")


def joined(me: str, hosts: tuple[str, ...] = HOSTS, now: float = 0.0) -> sv.State:
    """A launcher whose hosts have all joined: the roles are started, the loop runs."""
    state = sv.State(me, hosts, SETTINGS)
    sv.step(state, [p.Resolved("10.0.0.1")], now)
    if me == hosts[0]:
        actions = sv.step(state, [p.Hello(i, h) for i, h in enumerate(hosts[1:])], now)
    else:
        sv.step(state, [p.Connected()], now)
        actions = sv.step(state, [p.Received(hosts[0], {"type": "start"})], now)
    assert p.StartRoles() in actions and state.phase == sv.RUNNING
    return state


def training(me: str, now: float = 0.0, kvstore: str = "dist_sync") -> sv.State:
    """Joined, and this host's worker reported a first batch."""
    state = joined(me, now=now)
    started = p.Reported({"event": "started", "kvstore": kvstore})
    sv.step(state, [started, p.Reported({"event": "progress", "step": 1})], now)
    return state


def failed(actions: list) -> Fault:
    assert actions and isinstance(actions[-1], p.Fail), actions
    return actions[-1].fault


def sent(actions: list, kind: str) -> dict[str, dict]:
    return {a.host: a.message for a in actions if isinstance(a, p.Send) and a.message["type"] == kind}


def without_beats(actions: list) -> list:
    return [a for a in actions if not (isinstance(a, p.Send) and a.message["type"] == "beat")]


def beat(active: bool = True, progress: str = "step 1 (0 s ago)", finished: bool = False) -> dict:
    return {"type": "beat", "active": active, "progress": progress, "finished": finished}


# ---- resolving and joining ------------------------------------------------------------------------


def test_sigterm_while_waiting_for_dns_is_a_stop_before_anything_starts():
    state = sv.State("algo-2", HOSTS, SETTINGS)
    actions = sv.step(state, [p.Signalled(), p.Resolved("10.0.0.1")], 5.0)
    assert actions == [p.Interrupted()]  # exit 0, as a single host stopped while preparing
    assert state.phase == sv.ENDED and sv.step(state, [p.Signalled()], 6.0) == []


def test_a_host_that_never_resolves_is_named_with_the_roles_it_runs():
    state = sv.State("algo-2", HOSTS, SETTINGS)
    fault = failed(sv.step(state, [p.Unresolved("algo-1", "host 'algo-1' did not resolve within 5 s")], 5.0))
    assert fault == Fault.of(
        "algo-2",
        "launcher",
        "host 'algo-1' did not resolve within 5 s; that host runs the scheduler and server and worker",
    )
    assert sv.step(sv.State("algo-1", HOSTS, SETTINGS), [p.Unresolved("algo-3", "x")], 0)[
        -1
    ].fault.problems == ("x; that host runs the server and worker",)


def test_primary_listens_accepts_known_hosts_once_and_starts_when_all_joined():
    state = sv.State("algo-1", HOSTS, SETTINGS)
    assert sv.step(state, [p.Resolved("10.0.0.1")], 0.0) == [p.Listen()]
    actions = sv.step(state, [p.Hello(7, "algo-2"), p.Hello(8, "algo-2"), p.Hello(9, "intruder")], 1.0)
    assert actions[:2] == [p.Accept(7, "algo-2"), p.Log("info", "Host algo-2 joined")]
    assert actions[2] == p.Reject(8) and actions[4] == p.Reject(9)
    assert "ignoring a hello from 'intruder' (expected one of algo-2, algo-3)" in actions[5].text
    assert state.phase == sv.JOINING
    actions = sv.step(state, [p.Hello(10, "algo-3")], 2.0)
    assert sent(actions, "start") == {"algo-2": {"type": "start"}, "algo-3": {"type": "start"}}
    assert p.StartRoles() in actions and state.phase == sv.RUNNING


def test_primary_fails_when_a_host_never_joins():
    state = sv.State("algo-1", HOSTS, SETTINGS)
    sv.step(state, [p.Resolved("10.0.0.1")], 0.0)
    sv.step(state, [p.Hello(1, "algo-3")], 1.0)
    assert sv.step(state, [], 60.0) == []
    fault = failed(sv.step(state, [], 60.5))
    assert fault == Fault.of(
        "algo-2", "launcher", "host(s) algo-2 did not join within 60 s (SAGEMAKER_CV_RENDEZVOUS_TIMEOUT)"
    )
    assert sent(sv.step(state, [], 61), "abort") == {}  # ended: nothing more


def test_busy_control_port_is_a_named_failure():
    state = sv.State("algo-1", HOSTS, SETTINGS)
    sv.step(state, [p.Resolved("10.0.0.1")], 0.0)
    fault = failed(sv.step(state, [p.ListenFailed("[Errno 98] Address already in use")], 0.1))
    assert fault.problems == (
        "cannot listen on the control port 8001 (SAGEMAKER_CV_CONTROL_PORT): [Errno 98] Address already in use",
    )


def test_other_host_retries_the_connection_until_the_rendezvous_deadline():
    state = sv.State("algo-2", HOSTS, SETTINGS)
    assert sv.step(state, [p.Resolved("10.0.0.1")], 0.0) == [p.Connect()]
    assert sv.step(state, [p.ConnectFailed("[Errno 111] Connection refused")], 30.0) == [p.Connect()]
    fault = failed(sv.step(state, [p.ConnectFailed("[Errno 111] Connection refused")], 61.0))
    assert fault == Fault.of(
        "algo-1",
        "launcher",
        "the launcher on algo-1 did not accept a connection at 10.0.0.1:8001 within 60 s "
        "(SAGEMAKER_CV_RENDEZVOUS_TIMEOUT); last error: [Errno 111] Connection refused",
    )
    assert fault.as_error("algo-2").args[0].startswith("launcher on host algo-1: the launcher on algo-1")


def test_other_host_says_hello_then_waits_for_start_or_abort():
    state = sv.State("algo-2", HOSTS, SETTINGS)
    sv.step(state, [p.Resolved("10.0.0.1")], 0.0)
    assert sv.step(state, [p.Connected()], 1.0) == [p.Send("algo-1", {"type": "hello", "host": "algo-2"})]
    assert sv.step(state, [], 2.0) == []  # connected: no more attempts, no beats before the start
    abort = Fault.of("algo-3", "launcher", "host 'algo-1' did not resolve")
    assert sv.step(state, [p.Received("algo-1", {"type": "abort", "fault": abort.to_wire()})], 3.0) == [
        p.Fail(abort)
    ]


def test_other_host_fails_when_the_link_closes_or_the_rendezvous_ends_before_the_start():
    state = sv.State("algo-2", HOSTS, SETTINGS)
    sv.step(state, [p.Resolved("10.0.0.1"), p.Connected()], 0.0)
    assert failed(sv.step(state, [p.LinkClosed("algo-1")], 1.0)) == Fault.of(
        "algo-1", "launcher", "closed the control link before training started"
    )
    state = sv.State("algo-2", HOSTS, SETTINGS)
    sv.step(state, [p.Resolved("10.0.0.1"), p.Connected()], 0.0)
    assert failed(sv.step(state, [], 61.0)).problems == (
        "not every host joined within 60 s (SAGEMAKER_CV_RENDEZVOUS_TIMEOUT)",
    )


def test_sigterm_while_joining_stops_the_hosts_linked_so_far():
    primary = sv.State("algo-1", HOSTS, SETTINGS)
    sv.step(primary, [p.Resolved("10.0.0.1"), p.Hello(7, "algo-2")], 0.0)
    assert sv.step(primary, [p.Signalled()], 1.0) == [p.Send("algo-2", {"type": "stop"}), p.Interrupted()]
    other = sv.State("algo-2", HOSTS, SETTINGS)
    sv.step(other, [p.Resolved("10.0.0.1"), p.Connected()], 0.0)
    assert sv.step(other, [p.Received("algo-1", {"type": "stop"}), p.LinkClosed("algo-1")], 1.0) == [
        p.Interrupted()
    ]
    other = sv.State("algo-2", HOSTS, SETTINGS)
    sv.step(other, [p.Resolved("10.0.0.1"), p.Connected()], 0.0)
    assert sv.step(other, [p.Signalled()], 1.0) == [p.Send("algo-1", {"type": "stop"}), p.Interrupted()]


# ---- heartbeats and lost hosts --------------------------------------------------------------------


def test_heartbeats_every_second_carry_the_workers_state():
    state = joined("algo-2", now=-1.0)
    actions = sv.step(state, [], 0.0)
    assert sent(actions, "beat") == {"algo-1": beat(True, "not started")}  # preparing data is activity
    assert sv.step(state, [], 0.5) == []
    sv.step(state, [p.Reported({"event": "started"}), p.Reported({"event": "progress", "step": 7})], 0.6)
    assert sent(sv.step(state, [], 1.0), "beat")["algo-1"] == beat(True, "step 7 (0 s ago)")
    assert sent(sv.step(state, [], 5.0), "beat")["algo-1"] == beat(False, "step 7 (4 s ago)")  # blocked?
    sv.step(state, [p.Reported({"event": "trained", "step": 9})], 5.1)
    assert sent(sv.step(state, [], 6.0), "beat")["algo-1"] == beat(False, "finished", finished=True)


def test_a_silent_host_is_lost_and_named():
    state = training("algo-1")
    sv.step(state, [p.Received("algo-2", beat()), p.Received("algo-3", beat())], 20.0)
    actions = sv.step(state, [p.Received("algo-3", beat())], 45.0)  # algo-2 last heard 25 s ago
    assert not any(isinstance(a, p.Fail) for a in actions)
    actions = sv.step(state, [], 50.5)
    assert failed(actions) == Fault.of(
        "algo-2", "launcher", "sent no heartbeat for 30 s (SAGEMAKER_CV_PEER_TIMEOUT)"
    )
    assert sent(actions, "abort") == {"algo-3": {"type": "abort", "fault": failed(actions).to_wire()}}


def test_a_closed_link_while_training_fails_the_job():
    state = training("algo-2")
    actions = sv.step(state, [p.LinkClosed("algo-1")], 3.0)
    assert failed(actions) == Fault.of("algo-1", "launcher", "closed the control link")
    assert sent(actions, "fail") == {}  # not this host's own fault: algo-1 knows


# ---- role deaths and worker failures --------------------------------------------------------------


def test_killed_worker_on_another_host_is_reported_to_the_primary_which_aborts_the_rest():
    state = training("algo-2")
    actions = sv.step(state, [p.Exited("worker", -signal.SIGKILL)], 4.0)
    fault = Fault.of("algo-2", "worker", "was killed by SIGKILL")
    assert actions == [p.Send("algo-1", {"type": "fail", "fault": fault.to_wire()}), p.Fail(fault)]
    primary = training("algo-1")
    actions = sv.step(primary, [p.Received("algo-2", {"type": "fail", "fault": fault.to_wire()})], 4.1)
    assert actions == [
        p.Log("error", "Host algo-2 reports: worker on host algo-2 failed"),
        p.Send("algo-3", {"type": "abort", "fault": fault.to_wire()}),
        p.Fail(fault),
    ]
    assert str(fault.as_error("algo-1")) == (
        "worker on host algo-2: was killed by SIGKILL (host algo-1 stopped its own processes)"
    )


def test_killed_server_while_training_fails_every_host():
    state = training("algo-1")
    actions = sv.step(state, [p.Exited("server", -signal.SIGKILL)], 4.0)
    fault = Fault.of("algo-1", "server", "was killed by SIGKILL while training was running")
    assert failed(actions) == fault
    assert set(sent(actions, "abort")) == {"algo-2", "algo-3"}


def test_worker_exception_keeps_its_reason_and_kind():
    state = training("algo-1")
    report = {"event": "failed", "kind": "AlgorithmError", "problems": ["FileExistsError: [Errno 17] model"]}
    assert not any(
        isinstance(a, p.Fail) for a in sv.step(state, [p.Reported(report)], 3.0)
    )  # acted on at exit
    actions = sv.step(state, [p.Exited("worker", 1)], 3.1)
    assert failed(actions) == Fault(
        "algo-1", "worker", "AlgorithmError", ("FileExistsError: [Errno 17] model",)
    )


def test_client_error_on_one_host_stays_a_client_error_everywhere():
    state = joined("algo-2")
    report = {"event": "failed", "kind": "ClientError", "problems": ["channel 'train': bad record", "more"]}
    actions = sv.step(state, [p.Reported(report), p.Exited("worker", 2)], 3.0)
    fault = failed(actions)
    assert fault == Fault("algo-2", "worker", "ClientError", ("channel 'train': bad record", "more"))
    assert sent(actions, "fail") == {"algo-1": {"type": "fail", "fault": fault.to_wire()}}
    assert fault.as_error("algo-3").problems[0].startswith("worker on host algo-2: channel 'train'")


def test_a_server_exiting_after_the_worker_finished_is_not_a_fault():
    state = training("algo-1")
    actions = sv.step(state, [p.Exited("worker", 0), p.Exited("server", -signal.SIGTERM)], 9.0)
    assert p.Log("info", "server on host algo-1 was killed by SIGTERM") in actions
    assert not any(isinstance(a, p.Fail) for a in actions)


# ---- stalls and the end of training ---------------------------------------------------------------


def test_a_cluster_where_no_worker_progresses_fails_at_the_stall_deadline():
    state = training("algo-1")
    for now in range(1, 60):  # algo-2 stopped moving; the primary's worker waits for it
        sv.step(
            state,
            [p.Received("algo-2", beat(False, "step 3 (40 s ago)")), p.Received("algo-3", beat())],
            now,
        )
    idle = [p.Received(h, beat(False, "step 3 (99 s ago)")) for h in HOSTS[1:]]
    for now in range(60, 160):  # algo-3 was last active at 59 s
        assert not any(isinstance(a, p.Fail) for a in sv.step(state, idle, now)), now
    fault = failed(sv.step(state, idle, 160))
    assert fault.problems[0].startswith(
        "no worker made progress for 101 s (SAGEMAKER_CV_STALL_TIMEOUT) although"
    )
    assert fault.problems[0].endswith(
        "last worker reports: algo-1 step 1 (160 s ago), algo-2 step 3 (99 s ago), algo-3 step 3 (99 s ago)"
    )


def no_failure(actions: list) -> bool:
    return not any(isinstance(a, p.Fail) for a in actions)


def test_primary_blocked_at_the_end_of_an_epoch_after_every_other_worker_finished_fails_fast():
    state = training("algo-1")
    sv.step(state, [p.Reported({"event": "syncing", "epoch": 0, "step": 6})], 10.0)
    sv.step(state, [p.Received("algo-2", beat(False, "finished", finished=True))], 11.0)
    for now in range(12, 60):  # algo-3 still trains: the primary waits for its gradients, rightly
        assert no_failure(sv.step(state, [p.Received(h, beat()) for h in HOSTS[1:]], now))
    sv.step(state, [p.Received("algo-3", {"type": "done"})], 60.0)  # now every other worker is done
    idle = [p.Received("algo-2", beat(False)), p.Received("algo-3", beat(False))]
    for now in range(61, 91):
        assert no_failure(sv.step(state, idle, now))
    fault = failed(sv.step(state, [], 90.6))
    assert fault == Fault.of(
        "algo-1",
        "launcher",
        "the worker has waited 31 s (SAGEMAKER_CV_PEER_TIMEOUT) at the end of epoch 0 for the parameter server "
        "although every other host's worker had finished training: gradients of a finished worker never "
        "reached the servers",
    )


def test_primary_blocked_inside_an_epoch_after_every_other_worker_left_fails_fast():
    state = training("algo-1")
    sv.step(state, [p.Reported({"event": "progress", "step": 5})], 3.0)
    for now in range(4, 35):
        assert no_failure(sv.step(state, [p.Received(h, {"type": "done"}) for h in HOSTS[1:]], now))
    assert (
        "has waited 31 s (SAGEMAKER_CV_PEER_TIMEOUT) after step 5 for the parameter server"
        in (failed(sv.step(state, [], 35.4)).problems[0])
    )


def test_primary_that_synchronised_may_validate_as_long_as_it_takes():
    state = training("algo-1")
    sync = [p.Reported({"event": "syncing", "epoch": 4}), p.Reported({"event": "synced", "epoch": 4})]
    sv.step(state, sync, 10)
    for now in range(11, 99):
        assert no_failure(
            sv.step(state, [p.Received(h, beat(False, "finished", True)) for h in HOSTS[1:]], now)
        )


def test_with_dist_async_the_primary_may_still_train_after_the_others_finished():
    # Workers do not wait for each other there: the primary's queued steps may take long to compute.
    state = training("algo-1", kvstore="dist_async")
    sv.step(state, [p.Reported({"event": "syncing", "epoch": 0})], 1.0)
    for now in range(2, 99):
        assert no_failure(sv.step(state, [p.Received(h, {"type": "done"}) for h in HOSTS[1:]], now))


def test_early_stopping_decisions_go_from_the_primarys_worker_to_every_other_worker():
    primary = training("algo-1")
    actions = sv.step(primary, [p.Reported({"event": "decision", "epoch": 2, "stop": True})], 5.0)
    decision = {"type": "decision", "epoch": 2, "stop": True}
    assert sent(actions, "decision") == {"algo-2": decision, "algo-3": decision}
    other = training("algo-2")
    assert without_beats(sv.step(other, [p.Received("algo-1", decision)], 5.1)) == [p.PassDecision(2, True)]
    sv.step(other, [p.Exited("worker", 0)], 5.2)
    assert without_beats(sv.step(other, [p.Received("algo-1", decision)], 5.3)) == []  # nobody left to tell


def test_done_and_finish_end_the_job_once_every_worker_exited():
    primary = training("algo-1")
    assert p.Log("info", "worker on host algo-1 finished") in sv.step(primary, [p.Exited("worker", 0)], 9.0)
    assert without_beats(sv.step(primary, [p.Received("algo-2", {"type": "done"})], 9.1)) == []
    actions = without_beats(sv.step(primary, [p.Received("algo-3", {"type": "done"})], 9.2))
    assert actions == [
        p.Send("algo-2", {"type": "finish"}),
        p.Send("algo-3", {"type": "finish"}),
        p.EndRoles(sv.SHUTDOWN_WAIT, 5.0),
        p.Finish(stopped=False),
    ]
    other = training("algo-2")
    assert p.Send("algo-1", {"type": "done"}) in sv.step(other, [p.Exited("worker", 0)], 9.0)
    assert without_beats(sv.step(other, [], 9.05)) == []
    actions = sv.step(other, [p.Received("algo-1", {"type": "finish"}), p.LinkClosed("algo-1")], 9.3)
    assert actions[-2:] == [p.EndRoles(sv.SHUTDOWN_WAIT, 5.0), p.Finish(stopped=False)]


def test_a_saved_model_ends_the_job_when_a_worker_stays_in_the_kvstores_exit_barrier():
    # algo-2 and algo-3 trained and left without the barrier; algo-1's worker saved the model and
    # now waits there for them forever.
    primary = training("algo-1")
    sv.step(primary, [p.Received(h, {"type": "done"}) for h in HOSTS[1:]], 5.0)
    sv.step(primary, [p.Reported({"event": "trained", "step": 9})], 6.0)
    for now in range(7, 17):
        assert not any(isinstance(a, p.Finish) for a in sv.step(primary, [], now))
    actions = without_beats(sv.step(primary, [], 16.5))
    assert actions == [
        p.Log("warning", "worker on host algo-1 saved the model but did not exit within 10 s; ending it"),
        p.Send("algo-2", {"type": "finish", "promptly": True}),
        p.Send("algo-3", {"type": "finish", "promptly": True}),
        p.EndRoles(2.0, 2.0),
        p.Finish(stopped=False),
    ]
    other = training("algo-2")
    sv.step(other, [p.Reported({"event": "trained", "step": 9})], 5.0)  # its worker is in the barrier
    actions = sv.step(other, [p.Received("algo-1", {"type": "finish", "promptly": True})], 6.0)
    assert actions[-2:] == [p.EndRoles(sv.STOP_WAIT, 5.0), p.Finish(stopped=False)]


def test_another_host_exits_zero_only_once_the_primary_confirmed_the_model():
    other = training("algo-2")
    sv.step(other, [p.Exited("worker", 0)], 9.0)
    fault = failed(sv.step(other, [p.LinkClosed("algo-1")], 9.5))
    assert fault == Fault.of(
        "algo-1", "launcher", "closed the control link before it confirmed that the model was saved"
    )


# ---- SIGTERM --------------------------------------------------------------------------------------


STOPPING_LOG = p.Log(
    "info",
    "Stopping (SIGTERM on host {}): the primary's worker finishes its batch, then every worker stops "
    "after that batch and the primary saves",
)


def stopping(origin: str) -> p.Log:
    return p.Log(STOPPING_LOG.level, STOPPING_LOG.text.format(origin))


def test_sigterm_on_the_primary_stops_its_worker_first_then_every_other_host_then_ends_once_saved():
    primary = training("algo-1")
    actions = sv.step(primary, [p.Signalled()], 10.0)
    assert actions[:2] == [stopping("algo-1"), p.SignalRole("worker", signal.SIGTERM)]
    # The others keep training until the primary's worker stopped: a worker that stopped a batch
    # ahead of another would wait forever for that batch's gradients.
    assert sent(actions, "stop") == {}
    assert sv.step(primary, [p.Signalled()], 10.5) == []  # a second SIGTERM changes nothing
    assert sent(sv.step(primary, [p.Reported({"event": "progress", "step": 6})], 10.6), "stop") == {}
    actions = sv.step(primary, [p.Reported({"event": "stopped", "step": 6})], 10.7)
    stop = {"type": "stop", "origin": "algo-1", "step": 6}
    assert sent(actions, "stop") == {"algo-2": stop, "algo-3": stop}
    assert not any(isinstance(a, p.Finish) for a in actions)  # not saved yet
    actions = sv.step(primary, [p.Reported({"event": "trained", "interrupted": True})], 12.0)
    assert sent(actions, "stop") == {}  # told once
    assert actions[-3:] == [
        p.Send("algo-3", {"type": "finish"}),
        p.EndRoles(2.0, 2.0),
        p.Finish(stopped=True),
    ]


def test_sigterm_relayed_to_another_host_ends_it_on_the_primarys_finish():
    other = training("algo-3")
    stop = {"type": "stop", "origin": "algo-1", "step": 6}
    actions = sv.step(other, [p.Received("algo-1", stop)], 10.0)
    assert without_beats(actions) == [
        stopping("algo-1"),
        p.Log("info", "The primary's worker stopped after step 6; stopping ours"),
        p.SignalRole("worker", signal.SIGTERM),
    ]
    assert not any(isinstance(a, p.Finish) for a in sv.step(other, [p.Exited("worker", 0)], 11.0))
    actions = sv.step(other, [p.Received("algo-1", {"type": "finish"})], 12.0)
    assert actions[-2:] == [p.EndRoles(2.0, 2.0), p.Finish(stopped=True)]


def test_sigterm_on_another_host_stops_the_primarys_worker_first_then_every_other_one():
    other = training("algo-2")
    actions = sv.step(other, [p.Signalled()], 10.0)
    assert sent(actions, "stop") == {"algo-1": {"type": "stop", "origin": "algo-2"}}
    assert not any(isinstance(a, p.SignalRole) for a in actions)  # not before the primary's worker
    primary = training("algo-1")
    actions = sv.step(primary, [p.Received("algo-2", {"type": "stop", "origin": "algo-2"})], 10.1)
    assert actions[:2] == [stopping("algo-2"), p.SignalRole("worker", signal.SIGTERM)]
    assert sent(actions, "stop") == {}
    actions = sv.step(primary, [p.Reported({"event": "stopped", "step": 9})], 10.3)
    stop = {"type": "stop", "origin": "algo-2", "step": 9}
    assert sent(actions, "stop") == {"algo-2": stop, "algo-3": stop}  # the origin too
    actions = sv.step(other, [p.Received("algo-1", stop)], 10.4)
    assert actions == [
        p.Log("info", "The primary's worker stopped after step 9; stopping ours"),
        p.SignalRole("worker", signal.SIGTERM),
    ]
    assert sv.step(other, [p.Received("algo-1", stop)], 10.5) == []  # signalled once


def test_primary_whose_worker_ended_without_stopping_releases_the_others_at_once():
    primary = training("algo-1")
    sv.step(primary, [p.Signalled()], 10.0)
    actions = sv.step(primary, [p.Exited("worker", 0)], 11.0)  # stopped while preparing its data
    assert sent(actions, "stop") == {h: {"type": "stop", "origin": "algo-1", "step": 1} for h in HOSTS[1:]}


def test_stopped_host_without_the_primarys_confirmation_does_not_exit_zero():
    other = training("algo-2")
    sv.step(other, [p.Signalled()], 10.0)
    fault = failed(sv.step(other, [p.LinkClosed("algo-1")], 11.0))
    assert fault.problems == ("closed the control link before it confirmed that the model was saved",)
    other = training("algo-2")
    sv.step(other, [p.Signalled()], 10.0)
    for now in range(11, 100):
        sv.step(other, [p.Received("algo-1", beat())], now)
    assert failed(sv.step(other, [p.Received("algo-1", beat())], 100.5)) == Fault.of(
        "algo-1",
        "launcher",
        "did not confirm within 90 s of SIGTERM (SAGEMAKER_CV_STOP_GRACE) that the model was saved",
    )


def test_primary_whose_worker_does_not_save_within_the_grace_fails():
    primary = training("algo-1")
    sv.step(primary, [p.Signalled()], 10.0)
    for now in range(11, 100):
        sv.step(primary, [p.Received(h, beat(False)) for h in HOSTS[1:]], now)
    assert failed(sv.step(primary, [], 100.5)) == Fault.of(
        "algo-1", "worker", "did not save the model within 90 s of SIGTERM (SAGEMAKER_CV_STOP_GRACE)"
    )


def test_primary_whose_worker_was_stopped_while_preparing_data_ends_with_nothing_to_save():
    primary = training("algo-1")
    sv.step(primary, [p.Signalled()], 10.0)
    actions = sv.step(primary, [p.Exited("worker", 0)], 11.0)  # no `trained`: it never trained
    assert actions[-2:] == [p.EndRoles(2.0, 2.0), p.Finish(stopped=True)]
    assert sent(actions, "finish") == {h: {"type": "finish"} for h in HOSTS[1:]}


def test_a_worker_ended_hard_after_saving_is_not_a_fault_while_stopping():
    primary = training("algo-1")
    sv.step(primary, [p.Signalled(), p.Reported({"event": "trained", "interrupted": True})], 10.0)
    # The job ended right there (Finish): later exits are not looked at.
    assert sv.step(primary, [p.Exited("worker", -signal.SIGKILL)], 11.0) == []
    other = training("algo-2")
    sv.step(other, [p.Signalled(), p.Reported({"event": "trained", "interrupted": True})], 10.0)
    actions = sv.step(other, [p.Exited("worker", -signal.SIGTERM)], 10.5)
    assert actions == [p.Log("info", "worker on host algo-2 was killed by SIGTERM after saving")]


def test_unknown_events_are_a_bug():
    with pytest.raises(TypeError, match="not a supervisor event"):
        sv.step(sv.State("algo-1", HOSTS, SETTINGS), ["hello"], 0.0)
