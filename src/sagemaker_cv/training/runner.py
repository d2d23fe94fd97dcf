"""The two jobs the CLI runs: `validate` (everything but training) and `train`."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

from sagemaker_cv import algorithms
from sagemaker_cv.contract import logs
from sagemaker_cv.contract.errors import ClientError
from sagemaker_cv.contract.job import Job, load_job
from sagemaker_cv.contract.paths import MLPaths
from sagemaker_cv.training.devices import cpu_devices_from_env, plan_devices, probe_gpus
from sagemaker_cv.training.framework import mxnet_missing, require_mxnet

log = logs.get()


def load(paths: MLPaths, algorithm: str) -> Job:
    schema = algorithms.get(algorithm).schema
    log.info("Reading default configuration for %s: %s", algorithm, schema.defaults())
    job = load_job(paths, algorithm, num_gpus=0 if mxnet_missing() else probe_gpus())
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
    from sagemaker_cv.training import incremental

    job = load(paths, algorithm)
    missing = mxnet_missing()
    if missing:
        problems = incremental.channel_problems(job)
        if problems:
            raise ClientError(problems)
        log.warning("Configuration valid; the data files were not checked: %s", missing)
        return
    with _scratch() as scratch:
        prepared = _task(job, scratch).check_data()
        if incremental.prepare(job, scratch):
            log.info("The model channel's model fits this job")
    counts = ", ".join(f"{k}: {v} samples" for k, v in prepared.counts.items())
    log.info("Validation passed: %s", counts or "the data streams in Pipe mode and is checked as it arrives")


def train(paths: MLPaths, algorithm: str) -> None:
    require_mxnet("train")
    job = load(paths, algorithm)
    if job.resource.num_hosts > 1:
        # This process becomes the host's launcher: it starts the parameter-server roles and the
        # worker (which calls train_job) as children and fails the job if any of them fails.
        from sagemaker_cv.distributed import launcher

        launcher.run(paths, algorithm, job.resource)
        return
    train_job(job)


def train_job(job: Job, extra_hooks: Sequence = (), decisions=None) -> None:
    """Train in this process (the one worker of a multi-host job, or a single-host job).

    `decisions` carries the primary's early-stopping decisions between hosts."""
    from sagemaker_cv.training import engine, seeding
    from sagemaker_cv.training.hooks import standard_hooks
    from sagemaker_cv.training.start import Start

    hp = job.hyperparameters
    resource = job.resource
    start = Start.decide(job)  # a checkpoint to resume, the model channel, or fresh weights
    job = start.job
    with _scratch() as scratch, engine.StopOnSignal() as stop:
        task = _task(job, scratch)
        task.setup(start.prepare(task.check_data(), scratch))
        hooks = [
            seeding.EpochSeeds(job.seed, resource.rank),
            *standard_hooks(
                task, hp, primary=resource.is_primary, decisions=decisions, primary_host=resource.primary_host
            ),
        ]
        epochs, resume = start.resume(task, hooks, hp.epochs)
        try:
            state = engine.fit(task, [*hooks, *extra_hooks], epochs, stop, resume=resume)
        finally:
            task.close()
    if state.interrupted:
        log.info("Training stopped by signal; the model saved is from epoch %s", state.saved_epoch)
    elif resource.is_primary:
        log.info("Training finished; model files are in %s", job.paths.model_dir)
