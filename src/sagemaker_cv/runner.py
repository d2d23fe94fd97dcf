"""The two jobs the CLI runs: `validate` (everything but training) and `train`."""

from __future__ import annotations

import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from sagemaker_cv import logs
from sagemaker_cv.devices import cpu_devices_from_env, plan_devices, probe_gpus
from sagemaker_cv.job import Job, load_job
from sagemaker_cv.paths import MLPaths
from sagemaker_cv.schema import get_schema

log = logs.get()


def load(paths: MLPaths, algorithm: str) -> Job:
    schema = get_schema(algorithm)
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


def validate(paths: MLPaths, algorithm: str) -> None:
    """Parse every config file and check every data file as `train` would, without training."""
    from sagemaker_cv.tasks import task_class

    job = load(paths, algorithm)
    with _scratch() as scratch:
        task = task_class(algorithm)(job, _plan(job), scratch)
        summary = task.check_data()
    log.info("Validation passed: %s", ", ".join(f"{k}: {v} samples" for k, v in summary.items()))


def train(paths: MLPaths, algorithm: str) -> None:
    job = load(paths, algorithm)
    if job.resource.num_hosts > 1:
        # This process becomes the host's launcher: it starts the parameter-server roles and the
        # worker (which calls train_job) as children and fails the job if any of them fails.
        from sagemaker_cv import launcher

        launcher.run(paths, algorithm, job.resource)
        return
    train_job(paths, algorithm, job)


def train_job(paths: MLPaths, algorithm: str, job: Job, extra_hooks: tuple | list = ()) -> None:
    """Train in this process (the one worker of a multi-host job, or a single-host job)."""
    from sagemaker_cv.tasks import engine, task_class

    plan = _plan(job)
    hp = job.hyperparameters
    primary = job.resource.is_primary
    with _scratch() as scratch, engine.StopOnSignal() as stop:
        task = task_class(algorithm)(job, plan, scratch)
        task.check_data()
        task.setup()
        hooks = [
            engine.EpochTimer(),
            engine.Speedometer(task.log_interval),
            engine.Evaluator(),
            engine.Checkpointer(enabled=primary, frequency=hp.get("checkpoint_frequency")),
        ]
        if hp.get("early_stopping"):
            hooks.append(
                engine.EarlyStopping(
                    hp.early_stopping_min_epochs, hp.early_stopping_patience, hp.early_stopping_tolerance
                )
            )
        hooks.append(engine.Eta())
        hooks.extend(extra_hooks)
        try:
            state = engine.fit(task, hooks, hp.epochs, stop)
        finally:
            task.close()
    if state.interrupted:
        log.info("Training stopped by signal; the model saved is from epoch %s", state.saved_epoch)
    elif primary:
        log.info("Training finished; model files are in %s", paths.model_dir)
