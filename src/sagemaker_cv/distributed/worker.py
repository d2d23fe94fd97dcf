"""The worker role of a multi-host job: `python -m sagemaker_cv.distributed.worker`, started by the launcher.

It trains exactly as a single host does (runner.train_job), with DMLC_ROLE=worker in its
environment so the Gluon Trainer's dist kvstore joins the parameter server. It reports to its
launcher through a pipe (started, progress after every batch, trained, or failed with the
reason) and never writes the failure file itself: the launcher does, once per host.

SAGEMAKER_CV_DUMP_PARAMS=PATH (testing): after training, save this worker's parameters to PATH
(.npz; trainable ones under `trainable/`, BatchNorm running statistics under `aux/`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from sagemaker_cv.contract import logs
from sagemaker_cv.contract.errors import ClientError
from sagemaker_cv.distributed.launcher import DECISION_FD_ENV, REPORT_FD_ENV, die_with_parent
from sagemaker_cv.training.engine import Hook, State

DUMP_PARAMS_ENV = "SAGEMAKER_CV_DUMP_PARAMS"
log = logs.get("worker")


class Report:
    """Newline-delimited JSON to the launcher; silent when run by hand without one."""

    def __init__(self, fd: int | None):
        self.fd = fd

    def send(self, event: str, **fields) -> None:
        if self.fd is None:
            return
        os.write(self.fd, json.dumps({"event": event, **fields}).encode() + b"\n")


class Progress(Hook):
    """Tells the launcher the loop is alive, so it can tell a slow job from a blocked one."""

    def __init__(self, report: Report):
        self.report = report

    def before_train(self, task, state: State) -> None:
        self.report.send("started")

    def after_step(self, task, state: State, samples: int) -> None:
        # One short write per batch: cheap next to a batch, and the launcher sees the exact step.
        self.report.send("progress", step=state.step)

    def after_epoch(self, task, state: State) -> None:
        self.report.send("progress", step=state.step, epoch=state.epoch)

    def after_train(self, task, state: State) -> None:
        # Runs after the checkpoint hook: whatever the primary had to save is on disk.
        self.report.send("trained", interrupted=state.interrupted, step=state.step)


class PipeDecisions:
    """Early-stopping decisions between hosts (hooks.StopDecisions): the primary's go to its
    launcher, which relays them to every other launcher, which writes them to its worker."""

    def __init__(self, report: Report, decisions_fd: int | None):
        self.report = report
        self.decisions = os.fdopen(decisions_fd, "rb", buffering=0) if decisions_fd is not None else None

    def publish(self, epoch: int, stop: bool) -> None:
        self.report.send("decision", epoch=epoch, stop=stop)

    def wait(self, epoch: int) -> bool:
        line = self.decisions.readline()  # blocks while the primary validates
        if not line:
            raise RuntimeError("the launcher closed the decision pipe")
        decision = json.loads(line)
        if decision["epoch"] != epoch:
            raise RuntimeError(f"stop decision for epoch {decision['epoch']} arrived at epoch {epoch}")
        return bool(decision["stop"])


class DumpParameters(Hook):
    def __init__(self, path: Path):
        self.path = path

    def after_train(self, task, state: State) -> None:
        import numpy as np

        from sagemaker_cv.training.export import structural_params

        arrays = {}
        for name, param in structural_params(task.net).items():
            group = "aux" if param.grad_req == "null" else "trainable"
            arrays[f"{group}/{name}"] = param.data(param.list_ctx()[0]).asnumpy()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "wb") as f:
            np.savez(f, **arrays)


def _failure_fields(exc: BaseException) -> dict:
    if isinstance(exc, ClientError):
        return {"kind": "ClientError", "problems": exc.problems}
    return {"kind": "AlgorithmError", "problems": [f"{type(exc).__name__}: {exc}"]}


def main(argv: list[str] | None = None) -> int:
    die_with_parent()
    parser = argparse.ArgumentParser(prog="python -m sagemaker_cv.distributed.worker")
    parser.add_argument("--ml-root", type=Path, required=True)
    parser.add_argument("--algorithm", required=True)
    args = parser.parse_args(argv)
    logs.setup()
    fd = os.environ.get(REPORT_FD_ENV)
    report = Report(int(fd) if fd else None)
    try:
        from sagemaker_cv.contract.job import load_job
        from sagemaker_cv.contract.paths import MLPaths
        from sagemaker_cv.training import runner
        from sagemaker_cv.training.devices import probe_gpus
        from sagemaker_cv.training.hooks import HostThroughput

        paths = MLPaths(args.ml_root)
        job = load_job(paths, args.algorithm, num_gpus=probe_gpus())
        resource = job.resource
        hooks: list[Hook] = [HostThroughput(resource.current_host, resource.rank, resource.num_hosts)]
        if os.environ.get(DUMP_PARAMS_ENV):
            hooks.append(DumpParameters(Path(os.environ[DUMP_PARAMS_ENV])))
        hooks.append(Progress(report))
        decisions = None
        if job.hyperparameters.get("early_stopping"):
            decisions = PipeDecisions(
                report, None if resource.is_primary else int(os.environ[DECISION_FD_ENV])
            )
        runner.train_job(job, extra_hooks=hooks, decisions=decisions)
    except BaseException as exc:  # noqa: BLE001 - every fault goes to the launcher, which fails the job
        fields = _failure_fields(exc)
        log.error(
            "Worker failed: %s", "; ".join(fields["problems"]), exc_info=fields["kind"] != "ClientError"
        )
        report.send("failed", **fields)
        sys.stdout.flush()
        sys.stderr.flush()
        # Skip interpreter shutdown: the dist kvstore's destructor waits in a barrier for peers
        # that are still training, which would hang this process forever.
        os._exit(getattr(exc, "exit_code", 1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
