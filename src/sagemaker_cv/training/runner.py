"""The two jobs the CLI runs: `validate` (everything but training) and `train`.

Both do the same up to the first batch: read the config, check the model directory, check every
data file, build the network and the iterators; `validate` then stops, so it fails exactly where
`train` would. A stop signal (SIGTERM) ends either within seconds in every phase, and before the
first epoch has finished no model is written (TrainingInterrupted; the CLI exits 0).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from sagemaker_cv.contract import logs
from sagemaker_cv.contract.environment import JobSettings
from sagemaker_cv.contract.errors import ClientError, TrainingInterrupted
from sagemaker_cv.contract.paths import MLPaths, TensorBoardSettings
from sagemaker_cv.training import engine
from sagemaker_cv.training.devices import cpu_devices_from_env, fit_to_batch, plan_devices, probe_gpus
from sagemaker_cv.training.framework import mxnet_missing, require_mxnet
from sagemaker_cv.training.job import Job, load_job
from sagemaker_cv.training.outputs import check_model_dir, clear_model_dir
from sagemaker_cv.training.scratch import scratch_space

if TYPE_CHECKING:  # the entry point hands the record down; the registry stays above training
    from sagemaker_cv.algorithms.record import Algorithm

log = logs.get()
#: files the end-of-job exports write into the model directory (tools.onnx_export): an earlier
#: run's would describe another model
EXPORTS = ("model.onnx",)


def load(paths: MLPaths, algorithm: Algorithm) -> Job:
    schema = algorithm.schema
    log.info("Reading default configuration for %s: %s", algorithm.name, schema.defaults())
    JobSettings.from_env()  # every bad variable named at once, by validate and train alike
    job = load_job(paths, algorithm, num_gpus=0 if mxnet_missing() else probe_gpus())
    log.info(
        "Merging with provided configuration from %s: %s",
        paths.hyperparameters,
        logs.brief(job.raw_hyperparameters),
    )
    log.info("Final configuration: %s", logs.brief(schema.final_configuration(job.hyperparameters)))
    for warning in job.warnings:
        log.warning(warning)
    return job


def plan_for(job: Job):
    """This host's devices for the job, fitted to its batch."""
    plan = plan_devices(
        job.num_gpus,
        cpu_devices=cpu_devices_from_env(),
        num_hosts=job.resource.num_hosts,
        rank=job.resource.rank,
        kv_store=job.hyperparameters.get("kv_store"),
    )
    plan, warning = fit_to_batch(plan, job.hyperparameters.get("mini_batch_size"))
    if warning:
        log.warning(warning)
    return plan


def _task(job: Job, scratch):
    plan = plan_for(job)
    problems, warnings = job.algorithm.check_limits(job.hyperparameters, plan)
    if problems:
        raise ClientError(problems)
    for warning in warnings:
        log.warning(warning)
    return job.algorithm.task_class()(job, plan, scratch)


def validate(paths: MLPaths, algorithm: Algorithm) -> None:
    """Parse every config file, check every data file and build what training builds, without training."""
    from sagemaker_cv.training import incremental
    from sagemaker_cv.training.start import Start

    with engine.StopOnSignal():
        job = load(paths, algorithm)
        TensorBoardSettings.from_env(paths)  # and a bad SAGEMAKER_CV_TENSORBOARD_DIR
        missing = mxnet_missing()
        if missing:
            problems = incremental.channel_problems(job)
            if problems:
                raise ClientError(problems)
            log.warning("Configuration valid; the data files were not checked: %s", missing)
            return
        check_model_dir(paths.model_dir)
        with scratch_space(paths) as scratch:
            task = _task(job, scratch)
            try:
                prepared = Start(job, None, None).prepare(task.check_data(), scratch)
                if incremental.PREPARED_KEY in prepared.data:
                    log.info("The model channel's model fits this job")
                task.setup(prepared)  # the network, pretrained weights and iterators, as train builds them
            finally:
                task.close()
    counts = ", ".join(f"{k}: {v} samples" for k, v in prepared.counts.items())
    log.info("Validation passed: %s", counts or "the data streams in Pipe mode and is checked as it arrives")


def train(
    paths: MLPaths,
    algorithm: Algorithm,
    launch: Callable[[MLPaths, str, object], bool],
    after: Callable[[Job], None] | None = None,
) -> None:
    """Train the job: in this process on one host; on several, `launch(paths, algorithm name,
    resource)` (distributed.launcher.run, handed down by the CLI: it lives above this layer) makes
    this process the host's launcher, which starts the parameter-server roles and the worker
    (which calls train_job) and fails the job if any of them fails. Then, on the primary host of
    a job that was not stopped, `after(job)` (the CLI's end-of-job exports)."""
    require_mxnet("train")
    with engine.StopOnSignal():
        job = load(paths, algorithm)
        if job.resource.num_hosts > 1:
            check_model_dir(paths.model_dir)  # before every host waits for the others
            stopped = launch(paths, algorithm.name, job.resource)
        else:
            stopped = train_job(job)
    if after is not None and job.resource.is_primary and not stopped:
        after(job)


def train_job(job: Job, extra_hooks: Sequence = (), decisions=None, leading_hooks: Sequence = ()) -> bool:
    """Train in this process (the one worker of a multi-host job, or a single-host job); True
    when a stop signal ended it.

    `decisions` carries the primary's early-stopping decisions between hosts; `leading_hooks` run
    before the standard ones at every point of the loop, `extra_hooks` after them."""
    with engine.StopOnSignal() as stop:
        try:
            state = _train(job, stop, extra_hooks, decisions, leading_hooks)
        except TrainingInterrupted as stopped:
            log.info(stopped.before_training())
            return True
    if state.interrupted:
        if state.saved_epoch is not None:
            log.info("Training stopped by signal; the model saved is from epoch %s", state.saved_epoch)
    elif job.resource.is_primary:
        log.info("Training finished; model files are in %s", job.paths.model_dir)
    return state.interrupted


def _train(
    job: Job, stop: engine.StopRequest, extra_hooks: Sequence, decisions, leading_hooks: Sequence
) -> engine.State:
    from sagemaker_cv.training import seeding
    from sagemaker_cv.training.checkpoint import CheckpointWriter
    from sagemaker_cv.training.hooks import standard_hooks
    from sagemaker_cv.training.progress import Outputs
    from sagemaker_cv.training.start import Start

    hp, resource = job.hyperparameters, job.resource
    outputs = Outputs.for_job(job.paths, job.algorithm.metric_definitions)
    check_model_dir(job.paths.model_dir)
    if resource.is_primary:  # only the primary writes the model (local mode shares one directory)
        clear_model_dir(
            job.paths.model_dir, (*job.algorithm.artifacts, *job.algorithm.optional_artifacts, *EXPORTS)
        )
    start = Start.decide(
        job
    )  # a checkpoint to resume (it restores the model directory too), the model channel, or fresh weights
    job = start.job
    with scratch_space(job.paths) as scratch:
        task = _task(job, scratch)
        try:
            task.setup(start.prepare(task.check_data(), scratch))
            # The one place a run's hooks are put in order: the worker's leading hooks, the
            # epoch seeds, every job's hooks, the checkpoint writer (last of an epoch: everything
            # it saves is final), the worker's other hooks.
            hooks = [
                seeding.EpochSeeds(job.seed, resource.rank),
                *standard_hooks(
                    task,
                    hp,
                    primary=resource.is_primary,
                    decisions=decisions,
                    primary_host=resource.primary_host,
                    stop=stop,
                    outputs=outputs,
                ),
            ]
            epochs, resume = start.resume(task, hooks, hp.epochs)
            if start.store is not None and resource.is_primary:
                hooks.append(CheckpointWriter(start.store, job, hooks))
            return engine.fit(task, [*leading_hooks, *hooks, *extra_hooks], epochs, stop, resume=resume)
        finally:
            task.close()
