"""One host's share of a multi-host job: the `sagemaker-cv train` process on every host becomes
that host's launcher, which never trains itself. It resolves every host (bounded retry), joins
the control link to hosts[0], starts its roles once every host has joined (`roles`), and then
watches them, its worker's reports and the link until the job ends.

This module is the shell around `supervisor.step`: it gathers what happened (signals,
connections, messages, reports, exits) as events, asks the supervisor, and carries out the
actions. Every decision (deadlines, faults, stopping, finishing) is the supervisor's.
"""

from __future__ import annotations

import os
import signal
import time

from sagemaker_cv.contract import logs
from sagemaker_cv.contract.config import ResourceConfig
from sagemaker_cv.contract.errors import TrainingInterrupted
from sagemaker_cv.contract.paths import MLPaths
from sagemaker_cv.distributed import link, plan
from sagemaker_cv.distributed import protocol as p
from sagemaker_cv.distributed import supervisor as sv
from sagemaker_cv.distributed.protocol import HELLO, Fault, ProtocolError
from sagemaker_cv.distributed.roles import Roles

log = logs.get("launcher")

POLL = 0.2  # seconds the loop waits for something to read


class _Abort(Exception):
    def __init__(self, fault: Fault):
        super().__init__(fault.problems[0])
        self.fault = fault


class Launcher:
    def __init__(self, paths: MLPaths, algorithm: str, resource: ResourceConfig, settings: plan.Settings):
        self.paths, self.algorithm, self.resource, self.settings = paths, algorithm, resource, settings
        self.me, self.hosts = resource.current_host, tuple(resource.hosts)
        self.state = sv.State(self.me, self.hosts, settings)
        self.roles = Roles(self.me)
        self.conns: dict[str, link.Conn] = {}  # by host name
        self.pending: dict[int, link.Conn] = {}  # accepted on hosts[0], hello not read yet
        self.listener = None
        self.queued: list = []  # events produced while carrying out actions
        self.signalled = False
        self.addresses: dict[str, str] = {}

    def run(self) -> bool:
        """True when the job was stopped by SIGTERM, False when it trained to the end."""
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            self._resolve()
            while True:
                outcome = self._step(self._gather())
                if outcome is not None:
                    return outcome
        except _Abort as abort:
            self.roles.kill_all()
            raise abort.fault.as_error(self.me) from None
        finally:
            self.roles.kill_all()
            for conn in [*self.conns.values(), *self.pending.values()]:
                conn.close()
            if self.listener:
                self.listener.close()
            self.roles.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _on_signal(self, signum, frame) -> None:
        log.info("Launcher on host %s received %s", self.me, signal.Signals(signum).name)
        self.signalled = True

    def _step(self, events: list) -> bool | None:
        return self._execute(sv.step(self.state, events, time.monotonic()))

    # ---- gathering events ---------------------------------------------------------------------

    def _resolve(self) -> None:
        def sleep(seconds: float) -> None:
            # Back-off waits reach 30 s: a SIGTERM (docker stop while DNS lags) must end them at once.
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                if self.signalled:
                    self._step([p.Signalled()])
                time.sleep(min(POLL, max(0.0, deadline - time.monotonic())))

        def on_retry(host: str, exc: BaseException, wait: float) -> None:
            log.info("Host %s does not resolve yet (%s); retrying in %.1f s", host, exc, wait)

        try:
            self.addresses = plan.resolve_hosts(
                self.hosts,
                timeout=self.settings.resolve_timeout,
                host_map=self.settings.host_map,
                on_retry=on_retry,
                sleep=sleep,
            )
        except plan.HostResolutionError as exc:
            self._step([p.Unresolved(exc.host, str(exc))])
        log.info(
            "Distributed training on %d hosts: %s; scheduler on %s:%d",
            len(self.hosts),
            ", ".join(f"{h}={self.addresses[h]}" for h in self.hosts),
            self.hosts[0],
            self.settings.ps_port,
        )
        self._step([p.Resolved(self.addresses[self.hosts[0]])])

    def _gather(self) -> list:
        events, self.queued = self.queued, []
        if self.signalled:
            self.signalled = False
            events.append(p.Signalled())
        pipe = self.roles.pipe
        sources = [c for c in self.conns.values() if not c.closed] + list(self.pending.values())
        if self.listener:
            sources.append(self.listener)
        if pipe and not pipe.eof:
            sources.append(pipe)
        for item in link.readable(sources, POLL):
            if item is self.listener:
                conn = link.accept(self.listener)
                if conn:
                    self.pending[id(conn)] = conn
            elif item is pipe:
                events += [p.Reported(e) for e in pipe.drain()]  # at EOF its exit says why
            elif id(item) in self.pending:
                events += self._hello(item)
            else:
                messages = item.receive()
                if messages is None:
                    events.append(p.LinkClosed(item.host))
                else:
                    events += [p.Received(item.host, m) for m in messages]
        for role, code in self.roles.exited():
            if role == "worker" and pipe:
                events += [p.Reported(e) for e in pipe.drain_after_exit()]
            events.append(p.Exited(role, code))
        return events

    def _hello(self, conn: link.Conn) -> list:
        try:
            messages = conn.receive()
        except ProtocolError:
            messages = None
        if messages == []:
            return []  # the hello line is not complete yet
        if not messages or messages[0].get("type") != HELLO or not isinstance(messages[0].get("host"), str):
            self.pending.pop(id(conn)).close()  # not one of our launchers
            return []
        return [p.Hello(id(conn), messages[0]["host"])]

    # ---- carrying out actions -----------------------------------------------------------------

    def _execute(self, actions: list) -> bool | None:
        for action in actions:
            if isinstance(action, p.Send):
                conn = self.conns.get(action.host)
                if conn:
                    conn.send(action.message)
            elif isinstance(action, p.Log):
                getattr(log, action.level)(action.text)
            elif isinstance(action, p.Listen):
                try:
                    self.listener = link.listen(self.settings.control_port)
                except OSError as exc:
                    self.queued.append(p.ListenFailed(str(exc)))
            elif isinstance(action, p.Connect):
                try:
                    conn = link.connect(self.state.primary_address, self.settings.control_port)
                except OSError as exc:
                    self.queued.append(p.ConnectFailed(str(exc)))
                else:
                    conn.host = self.hosts[0]
                    self.conns[conn.host] = conn
                    self.queued.append(p.Connected())
            elif isinstance(action, p.Accept):
                conn = self.pending.pop(action.conn)
                conn.host = action.host
                self.conns[action.host] = conn
            elif isinstance(action, p.Reject):
                self.pending.pop(action.conn).close()
            elif isinstance(action, p.StartRoles):
                self._start_roles()
            elif isinstance(action, p.SignalRole):
                self.roles.signal(action.role, action.signal)
            elif isinstance(action, p.PassDecision):
                if self.roles.pipe:
                    self.roles.pipe.pass_decision(action.epoch, action.stop)
            elif isinstance(action, p.EndRoles):
                self.roles.end(action.wait, action.escalate)
            elif isinstance(action, p.Fail):
                raise _Abort(action.fault)
            elif isinstance(action, p.Interrupted):
                raise TrainingInterrupted("SIGTERM")
            elif isinstance(action, p.Finish):
                return action.stopped
            else:
                raise TypeError(f"not a supervisor action: {action!r}")
        return None

    def _start_roles(self) -> None:
        ips = [self.addresses[h] for h in self.hosts]
        iface = self.resource.network_interface_name
        binding = plan.choose_binding(iface, iface and link.interface_address(iface), self.addresses[self.me])
        if binding.note:
            log.warning("Host %s: %s", self.me, binding.note)
        for name in plan.roles_for(self.me, self.hosts):
            env = dict(os.environ)
            env.update(
                plan.dmlc_env(
                    name, ips, self.settings.ps_port, interface=binding.interface, node_host=binding.node_host
                )
            )
            pid = self.roles.start(name, env, self.paths.root, self.algorithm)
            log.info("Started %s on host %s (pid %d)", name, self.me, pid)


def run(paths: MLPaths, algorithm: str, resource: ResourceConfig) -> bool:
    """Train on this host as one of `resource.hosts`; True when stopped by SIGTERM."""
    return Launcher(paths, algorithm, resource, plan.settings_from_env()).run()
