"""The two jobs the CLI runs: `validate` (everything but training) and `train`."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

from sagemaker_cv import algorithms
from sagemaker_cv.contract import logs
from sagemaker_cv.contract.job import Job, load_job
from sagemaker_cv.contract.paths import MLPaths
from sagemaker_cv.training.devices import cpu_devices_from_env, plan_devices, probe_gpus

log = logs.get()


def load(paths: MLPaths, algorithm: str) -> Job:
    schema = algorithms.get(algorithm).schema
    log.info("Reading default configuration for %s: %s", algorithm, schema.defaults())
    job = load_job(paths, algorithm, num_gpus=probe_gpus())
    log.info(
        "Merging with provided configuration from %s: %s", paths.hyperparameters, job.raw_hyperparameters
    )
    log.info("Final configuration: %s", schema.final_configuration(job.hyperparameters))
    for warning in job.warnings:
        log.warning(warning)
    return job


def _plan(job: Job):
    return plan_devices(
        job.num_gpus,
        cpu_devices=cpu_devices_from_env(),
        num_hosts=job.resource.num_hosts,
        rank=job.resource.rank,
        kv_store=job.hyperparameters.get("kv_store"),
    )


@contextmanager
def _scratch():
    path = Path(tempfile.mkdtemp(prefix="sagemaker-cv-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _task(job: Job, scratch: Path):
    return algorithms.get(job.algorithm).task_class()(job, _plan(job), scratch)


def validate(paths: MLPaths, algorithm: str) -> None:
    """Parse every config file and check every data file as `train` would, without training."""
    job = load(paths, algorithm)
    with _scratch() as scratch:
        prepared = _task(job, scratch).check_data()
    log.info("Validation passed: %s", ", ".join(f"{k}: {v} samples" for k, v in prepared.counts.items()))


def train(paths: MLPaths, algorithm: str) -> None:
    job = load(paths, algorithm)
    if job.resource.num_hosts > 1:
        # This process becomes the host's launcher: it starts the parameter-server roles and the
        # worker (which calls train_job) as children and fails the job if any of them fails.
        from sagemaker_cv.distributed import launcher

        launcher.run(paths, algorithm, job.resource)
        return
    train_job(job)


def train_job(job: Job, extra_hooks: Sequence = (), decisions=None, leading_hooks: Sequence = ()) -> None:
    """Train in this process (the one worker of a multi-host job, or a single-host job).

    `decisions` carries the primary's early-stopping decisions between hosts; `leading_hooks` run
    before the standard ones at every point of the loop, `extra_hooks` after them."""
    from sagemaker_cv.training import engine
    from sagemaker_cv.training.hooks import standard_hooks

    hp = job.hyperparameters
    resource = job.resource
    with _scratch() as scratch, engine.StopOnSignal() as stop:
        task = _task(job, scratch)
        prepared = task.check_data()
        task.setup(prepared)
        hooks = standard_hooks(
            task, hp, primary=resource.is_primary, decisions=decisions, primary_host=resource.primary_host
        )
        try:
            state = engine.fit(task, [*leading_hooks, *hooks, *extra_hooks], hp.epochs, stop)
        finally:
            task.close()
    if state.interrupted:
        log.info("Training stopped by signal; the model saved is from epoch %s", state.saved_epoch)
    elif resource.is_primary:
        log.info("Training finished; model files are in %s", job.paths.model_dir)
