"""The worker role of a multi-host job: `python -m sagemaker_cv.distributed.worker`, started by the launcher.

It trains exactly as a single host does (runner.train_job), with DMLC_ROLE=worker in its
environment so the Gluon Trainer's dist kvstore joins the parameter server. It reports to its
launcher through a pipe (protocol.WORKER_EVENTS: started, progress after every batch, the
synchronisation at every epoch's end, the batch a stop ended it after, trained, or failed with
the reason) and never writes the failure file itself: the launcher does, once per host.

At the end of every epoch the worker waits until MXNet's engine has run everything queued (the
last gradient pushes and weight pulls of the epoch) before anything else happens. Python runs
ahead of the engine (nothing waits for it during an epoch unless a batch line reads the metrics),
so without this a worker that finished training could exit with its last pushes still queued:
MXNet's exit hook (MXNotifyShutdown) makes the engine skip queued work, the dist_sync servers wait
for those gradients forever, and the primary blocks on its first read of the final weights.

Testing only:
    SAGEMAKER_CV_DUMP_PARAMS=PATH           after training, save this worker's parameters to PATH
                                            (.npz; trainable under `trainable/`, BatchNorm
                                            running statistics under `aux/`)
    SAGEMAKER_CV_TEST_EXIT_AT_STEP=N        the worker exits (code 0) right after step N, like a
                                            worker whose process ended before its last gradients
                                            were sent
    SAGEMAKER_CV_TEST_EXIT_WHEN_TRAINED=1   the worker exits (code 0) the moment its last epoch
                                            has synchronised, before anything else runs: the
                                            earliest a finished worker could leave
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sagemaker_cv.contract import logs
from sagemaker_cv.contract.errors import TrainingInterrupted
from sagemaker_cv.distributed import faults, protocol
from sagemaker_cv.distributed.protocol import Fault
from sagemaker_cv.distributed.roles import die_with_parent
from sagemaker_cv.training.engine import Hook, State, StopOnSignal

log = logs.get("worker")


class LauncherPipe:
    """The worker's end of the report pipe; silent when run by hand without a launcher."""

    def __init__(self, fd: int | None):
        self.fd = fd

    def send(self, event: str, **fields) -> None:
        if self.fd is not None:
            os.write(self.fd, protocol.encode({"event": event, **fields}))


class Progress(Hook):
    """Tells the launcher the loop is alive, so it can tell a slow job from a blocked one."""

    def __init__(self, pipe: LauncherPipe):
        self.pipe = pipe

    def before_train(self, task, state: State) -> None:
        plan = getattr(task, "plan", None)  # the Gluon tasks' device plan names the kvstore
        self.pipe.send(protocol.STARTED, kvstore=getattr(plan, "kvstore", None))

    def after_step(self, task, state: State, samples: int) -> None:
        # One short write per batch: cheap next to a batch, and the launcher sees the exact step.
        self.pipe.send(protocol.PROGRESS, step=state.step)

    def after_epoch(self, task, state: State) -> None:
        self.pipe.send(protocol.PROGRESS, step=state.step, epoch=state.epoch)

    def after_train(self, task, state: State) -> None:
        # Runs after the checkpoint hook: whatever the primary had to save is on disk.
        self.pipe.send(protocol.TRAINED, interrupted=state.interrupted, step=state.step)


class EpochSync(Hook):
    """First at every epoch's end: wait for MXNet's engine, so this epoch's last gradients have
    reached the servers and its final weights are here (see the module docstring). The launcher
    sees how long that takes: on the primary, after every other worker finished, a long wait can
    only mean lost gradients."""

    def __init__(self, pipe: LauncherPipe, exit_when_trained: bool = False):
        self.pipe, self.exit_when_trained = pipe, exit_when_trained

    def after_epoch(self, task, state: State) -> None:
        import mxnet as mx

        self.pipe.send(protocol.SYNCING, epoch=state.epoch, step=state.step)
        mx.nd.waitall()
        self.pipe.send(protocol.SYNCED, epoch=state.epoch, step=state.step)
        if self.exit_when_trained and state.epoch == state.epochs - 1:
            faults.exit_now(f"Exiting as soon as training ended ({faults.EXIT_WHEN_TRAINED_ENV})")


class StopReport(Hook):
    """First when the loop ends: tells the launcher after which batch a stop ended it, before
    anything is saved. On hosts[0] that releases the other hosts' workers (see
    supervisor._begin_stop): until then they keep training, so this batch's update completes."""

    def __init__(self, pipe: LauncherPipe):
        self.pipe = pipe

    def after_train(self, task, state: State) -> None:
        if state.interrupted:
            self.pipe.send(protocol.STOPPED, step=state.step)


class PipeDecisions:
    """Early-stopping decisions between hosts (hooks.StopDecisions): the primary's go to its
    launcher, which relays them to every other launcher, which writes them to its worker."""

    def __init__(self, pipe: LauncherPipe, decisions_fd: int | None):
        self.pipe = pipe
        self.decisions = os.fdopen(decisions_fd, "rb", buffering=0) if decisions_fd is not None else None

    def publish(self, epoch: int, stop: bool) -> None:
        self.pipe.send(protocol.DECISION, epoch=epoch, stop=stop)

    def wait(self, epoch: int) -> bool:
        line = self.decisions.readline()  # blocks while the primary validates
        if not line:
            raise RuntimeError("the launcher closed the decision pipe")
        decision = json.loads(line)
        if decision["epoch"] != epoch:
            raise RuntimeError(f"stop decision for epoch {decision['epoch']} arrived at epoch {epoch}")
        return bool(decision["stop"])


def main(argv: list[str], resolve: Callable[[str], Any]) -> int:
    """The worker process (`sagemaker-cv _worker ...`, started by the launcher); `resolve` turns
    the algorithm's name into its record (the CLI's registry lookup)."""
    die_with_parent()
    parser = argparse.ArgumentParser(prog="sagemaker-cv _worker")
    parser.add_argument("--ml-root", type=Path, required=True)
    parser.add_argument("--algorithm", required=True)
    args = parser.parse_args(argv)
    logs.setup()
    fd = os.environ.get(protocol.REPORT_FD_ENV)
    pipe = LauncherPipe(int(fd) if fd else None)
    # A SIGTERM while the job is read and MXNet imported (seconds) is a stop, not a death by signal
    # that the launcher would count as a failure; train_job then handles its own.
    with StopOnSignal():
        try:
            from sagemaker_cv.contract.paths import MLPaths
            from sagemaker_cv.training import runner
            from sagemaker_cv.training.devices import probe_gpus
            from sagemaker_cv.training.hooks import HostThroughput
            from sagemaker_cv.training.job import load_job

            job = load_job(MLPaths(args.ml_root), resolve(args.algorithm), num_gpus=probe_gpus())
            resource = job.resource
            hooks: list[Hook] = [HostThroughput(resource.current_host, resource.rank, resource.num_hosts)]
            hooks += faults.hooks_from_env(os.environ)
            hooks.append(Progress(pipe))
            decisions = None
            if job.hyperparameters.get("early_stopping"):
                decision_fd = None if resource.is_primary else int(os.environ[protocol.DECISION_FD_ENV])
                decisions = PipeDecisions(pipe, decision_fd)
            runner.train_job(
                job,
                extra_hooks=hooks,
                decisions=decisions,
                leading_hooks=[
                    StopReport(pipe),
                    EpochSync(pipe, exit_when_trained=bool(os.environ.get(faults.EXIT_WHEN_TRAINED_ENV))),
                ],
            )
        except TrainingInterrupted as stopped:
            log.info(stopped.before_training())
        except BaseException as exc:  # noqa: BLE001 - every fault goes to the launcher, which fails the job
            fault = Fault.from_exception(exc, host="", role="worker")
            log.error("Worker failed: %s", "; ".join(fault.problems), exc_info=fault.kind != "ClientError")
            pipe.send(protocol.FAILED, kind=fault.kind, problems=list(fault.problems))
            sys.stdout.flush()
            sys.stderr.flush()
            # Skip interpreter shutdown: the dist kvstore's destructor waits in a barrier for peers
            # that are still training, which would hang this process forever.
            os._exit(getattr(exc, "exit_code", 1))
    return 0
