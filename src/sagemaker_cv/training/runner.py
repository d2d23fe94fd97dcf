"""The two jobs the CLI runs: `validate` (everything but training) and `train`.

Both do the same up to the first batch: read the config, check the model directory, check every
data file, build the network and the iterators; `validate` then stops, so it fails exactly where
`train` would. A stop signal (SIGTERM) ends either within seconds in every phase, and before the
first epoch has finished no model is written (TrainingInterrupted; the CLI exits 0).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sagemaker_cv import algorithms
from sagemaker_cv.contract import logs
from sagemaker_cv.contract.errors import ClientError, TrainingInterrupted
from sagemaker_cv.contract.job import Job, load_job
from sagemaker_cv.contract.paths import MLPaths
from sagemaker_cv.training import engine
from sagemaker_cv.training.devices import cpu_devices_from_env, fit_to_batch, plan_devices, probe_gpus
from sagemaker_cv.training.framework import mxnet_missing, require_mxnet
from sagemaker_cv.training.outputs import check_model_dir, clear_model_dir
from sagemaker_cv.training.scratch import scratch_space

log = logs.get()
#: files the end-of-job exports write into the model directory (tools.onnx_export): an earlier
#: run's would describe another model
EXPORTS = ("model.onnx",)


def load(paths: MLPaths, algorithm: str) -> Job:
    schema = algorithms.get(algorithm).schema
    log.info("Reading default configuration for %s: %s", algorithm, schema.defaults())
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


def _plan(job: Job):
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
    return algorithms.get(job.algorithm).task_class()(job, _plan(job), scratch)


def validate(paths: MLPaths, algorithm: str) -> None:
    """Parse every config file, check every data file and build what training builds, without training."""
    from sagemaker_cv.training import incremental
    from sagemaker_cv.training.seeding import job_seed
    from sagemaker_cv.training.start import Start

    with engine.StopOnSignal():
        job = load(paths, algorithm)
        job_seed()  # a bad SAGEMAKER_CV_SEED fails here as it fails `train`
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


def train(paths: MLPaths, algorithm: str, after: Callable[[Job], None] | None = None) -> None:
    """Train the job; then, on the primary host of a job that was not stopped, `after(job)` (the
    CLI's end-of-job exports, which live above this layer)."""
    require_mxnet("train")
    with engine.StopOnSignal():
        job = load(paths, algorithm)
        if job.resource.num_hosts > 1:
            check_model_dir(paths.model_dir)  # before every host waits for the others
            # This process becomes the host's launcher: it starts the parameter-server roles and the
            # worker (which calls train_job) as children and fails the job if any of them fails.
            from sagemaker_cv.distributed import launcher

            stopped = launcher.run(paths, algorithm, job.resource)
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
    from sagemaker_cv.training.hooks import standard_hooks
    from sagemaker_cv.training.start import Start

    hp, resource = job.hyperparameters, job.resource
    check_model_dir(job.paths.model_dir)
    if resource.is_primary:  # only the primary writes the model (local mode shares one directory)
        clear_model_dir(job.paths.model_dir, (*algorithms.get(job.algorithm).artifacts, *EXPORTS))
    start = Start.decide(
        job
    )  # a checkpoint to resume (it restores the model directory too), the model channel, or fresh weights
    job = start.job
    with scratch_space(job.paths) as scratch:
        task = _task(job, scratch)
        try:
            task.setup(start.prepare(task.check_data(), scratch))
            hooks = [
                seeding.EpochSeeds(job.seed, resource.rank),
                *standard_hooks(
                    task,
                    hp,
                    primary=resource.is_primary,
                    decisions=decisions,
                    primary_host=resource.primary_host,
                    stop=stop,
                ),
            ]
            epochs, resume = start.resume(task, hooks, hp.epochs)
            return engine.fit(task, [*leading_hooks, *hooks, *extra_hooks], epochs, stop, resume=resume)
        finally:
            task.close()
