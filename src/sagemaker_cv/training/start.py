"""Where a training job starts from, decided once: the newest checkpoint of a restarted job, else
the model channel's model (incremental training), else fresh weights; with the seed that goes
with it (a resumed job keeps its checkpoint's, see training.seeding)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sagemaker_cv.contract import logs
from sagemaker_cv.training import checkpoint, incremental, seeding
from sagemaker_cv.training.engine import Hook
from sagemaker_cv.training.job import Job
from sagemaker_cv.training.task import Prepared

log = logs.get()


@dataclass(frozen=True)
class Start:
    job: Job  # with its seed
    store: checkpoint.CheckpointStore | None  # None: the job has no CheckpointConfig
    latest: checkpoint.Checkpoint | None  # the checkpoint to resume from

    @classmethod
    def decide(cls, job: Job) -> Start:
        store = checkpoint.store_for(job)
        latest = store.latest() if store else None
        job = replace(job, seed=latest.state["seed"] if latest else seeding.job_seed())
        if latest is not None:
            log.info("Random seed: %d (the checkpoint's)", job.seed)
        else:
            log.info("Random seed: %d (%s repeats it)", job.seed, seeding.SEED_ENV)
        seeding.seed_all(job.seed)  # the weights' initialisation draws from it
        return cls(job, store, latest)

    def prepare(self, prepared: Prepared, scratch: Path) -> Prepared:
        """What setup receives: with the model channel's model when the job does not resume."""
        if self.latest is not None:
            if incremental.CHANNEL in self.job.channels:
                log.info("The model channel is not used: the job resumes from its checkpoint")
            return prepared
        model = incremental.prepare(self.job, scratch)
        if model is None:
            return prepared
        return replace(prepared, data={**prepared.data, incremental.PREPARED_KEY: model})

    def resume(self, task, hooks: list[Hook], epochs: int) -> tuple[int, dict[str, Any] | None]:
        """Load the checkpoint into the set-up task and its hooks. Returns the epochs to run to
        and the loop state to resume, None for a fresh start."""
        resume = None
        if self.latest is not None:
            spec = self.job.algorithm.incremental
            resume = checkpoint.restore(self.latest, task, hooks, self.job, spec.keys if spec else ())
            if self.latest.state.get("finished"):
                log.info(
                    "Training had already ended: %s; nothing is left to train", self.latest.state["finished"]
                )
                epochs = resume["epoch"] + 1
        return epochs, resume
