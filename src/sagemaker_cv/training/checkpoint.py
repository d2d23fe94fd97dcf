"""Checkpoints for spot instances and restarted jobs.

When /opt/ml/input/config/checkpointconfig.json exists, the primary host writes a checkpoint
after every epoch into its LocalPath (default /opt/ml/checkpoints), which SageMaker copies to the
job's CheckpointConfig.S3Uri; a restarted job finds the same files there and resumes after the
newest epoch that was completely written.

A checkpoint is a directory `checkpoint-NNNN` (NNNN numbers the finished epoch as the model files
do: Epoch[2] is 0003) holding

    weights.params, optimizer.states   the task's state (GluonTask.save_state)
    model/                             /opt/ml/model as it was (the best model so far), which a new
                                       container no longer has
    state.json                         the loop's state, every hook's (best score, early stopping
                                       counters), the job seed, the hyperparameters
    MANIFEST.json                      size and SHA-256 of every file above, written last

It is written under a temporary name, then renamed, so a half-written checkpoint never carries
the final name; one that is damaged later (a truncated copy) fails its MANIFEST check and is
skipped with a warning naming it. The newest two are kept.

Several hosts: only the primary writes. SageMaker uploads every host's LocalPath to the same S3
prefix and, at a restart, downloads that prefix into every host's LocalPath, so each host finds
the primary's checkpoints in its own LocalPath and all of them pick the same newest valid one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sagemaker_cv.contract import config, logs
from sagemaker_cv.contract.errors import ClientError
from sagemaker_cv.training.engine import Hook, State
from sagemaker_cv.training.job import Job

log = logs.get("checkpoint")

FORMAT = 2  # 2: hooks keyed by their state_key
KEEP = 2
PREFIX = "checkpoint-"
MANIFEST, STATE, MODEL = "MANIFEST.json", "state.json", "model"
#: hyperparameters a resumed job may change without touching the optimizer's states
RESUMABLE_CHANGES = (
    "epochs",
    "checkpoint_frequency",
    "early_stopping",
    "early_stopping_min_epochs",
    "early_stopping_patience",
    "early_stopping_tolerance",
)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    state: dict  # state.json

    @property
    def number(self) -> int:
        return int(self.path.name[len(PREFIX) :])


class CheckpointStore:
    """The checkpoint directories in one LocalPath."""

    def __init__(self, directory: Path, keep: int = KEEP):
        self.directory, self.keep = directory, keep
        # Checkpoints found whole by this process (written, or hashed once): pruning after every
        # epoch need not re-read gigabytes.
        self.verified: set[str] = set()

    def valid(self, path: Path) -> bool:
        if path.name not in self.verified and self.problem(path) is None:
            self.verified.add(path.name)
        return path.name in self.verified

    def names(self) -> list[Path]:
        """Checkpoint directories, newest first (by number)."""
        if not self.directory.is_dir():
            return []
        found = [
            p
            for p in self.directory.iterdir()
            if p.name.startswith(PREFIX) and p.name[len(PREFIX) :].isdigit()
        ]
        return sorted(found, key=lambda p: int(p.name[len(PREFIX) :]), reverse=True)

    @staticmethod
    def problem(path: Path) -> str | None:
        """Why a checkpoint directory cannot be used, or None."""
        try:
            manifest = json.loads((path / MANIFEST).read_text())
            files = manifest["files"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return f"{MANIFEST} unreadable ({exc.__class__.__name__}: {exc})"
        for name, entry in files.items():
            file = path / name
            if not file.is_file():
                return f"{name} is missing"
            if file.stat().st_size != entry["size"]:
                return f"{name} has {file.stat().st_size} bytes, expected {entry['size']}"
            if _sha256(file) != entry["sha256"]:
                return f"{name} does not match its SHA-256"
        return None

    def latest(self) -> Checkpoint | None:
        """The newest valid checkpoint; every newer one that is damaged is named in a warning."""
        for path in self.names():
            problem = self.problem(path)
            if problem is None:
                self.verified.add(path.name)
                state = json.loads((path / STATE).read_text())
                if state.get("format") == FORMAT:
                    return Checkpoint(path, state)
                problem = f"format {state.get('format')!r}, expected {FORMAT}"
            self.verified.discard(path.name)
            log.warning("Skipping checkpoint %s: %s", path, problem)
        return None

    def write(self, number: int, state: dict, fill) -> Path:
        """Write checkpoint `number`: `fill(directory)` writes the task's files, then the state,
        the model copy and the manifest; then the rename makes it visible; then old ones go."""
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self.directory / f"{PREFIX}{number:04d}"
        tmp = self.directory / f".tmp-{final.name}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        fill(tmp)
        (tmp / STATE).write_text(json.dumps(state, indent=1, sort_keys=True))
        files = {}
        for file in sorted(p for p in tmp.rglob("*") if p.is_file()):
            _fsync(file)
            files[file.relative_to(tmp).as_posix()] = {"size": file.stat().st_size, "sha256": _sha256(file)}
        (tmp / MANIFEST).write_text(json.dumps({"format": FORMAT, "files": files}, indent=1))
        _fsync(tmp / MANIFEST)
        if final.exists():  # a restart that repeats an epoch replaces its earlier checkpoint
            shutil.rmtree(final)
        self.verified.discard(final.name)
        os.rename(tmp, final)
        _fsync(self.directory)
        self.verified.add(final.name)
        self.prune()
        return final

    def prune(self) -> None:
        """Keep the newest `keep` valid checkpoints; remove older ones and abandoned temporaries."""
        kept = 0
        for path in self.names():
            if kept < self.keep and self.valid(path):
                kept += 1
                continue
            shutil.rmtree(path, ignore_errors=True)
            self.verified.discard(path.name)
        for tmp in self.directory.glob(".tmp-*"):
            if not tmp.name.endswith(f"-{os.getpid()}"):
                shutil.rmtree(tmp, ignore_errors=True)


def copy_model_dir(model_dir: Path, target: Path, previous: Path | None) -> None:
    """Copy the model files into `target`; a file identical to the previous checkpoint's copy is
    hard-linked instead (with checkpoint_frequency every epoch's files stay, and would otherwise be
    copied again every epoch)."""
    target.mkdir(parents=True, exist_ok=True)
    if not model_dir.is_dir():
        return
    for file in sorted(p for p in model_dir.iterdir() if p.is_file()):
        old = previous / file.name if previous is not None else None
        if old is not None and old.is_file() and old.stat().st_size == file.stat().st_size:
            if _sha256(old) == _sha256(file):
                os.link(old, target / file.name)
                continue
        shutil.copy2(file, target / file.name)


def restore_model_dir(source: Path, model_dir: Path) -> list[str]:
    """Make the model directory hold exactly the checkpoint's model files."""
    model_dir.mkdir(parents=True, exist_ok=True)
    names = sorted(p.name for p in source.iterdir() if p.is_file()) if source.is_dir() else []
    for stale in model_dir.iterdir():
        if stale.is_file() and stale.name not in names:
            stale.unlink()
    for name in names:
        shutil.copy2(source / name, model_dir / name)
    return names


def changed_hyperparameters(saved: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, tuple]:
    """{name: (checkpoint's value, this job's value)} for every hyperparameter that differs."""
    keys = sorted(set(saved) | set(current))
    return {k: (saved.get(k), current.get(k)) for k in keys if saved.get(k) != current.get(k)}


def _jsonable(hp: Mapping[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in hp.items()}


class CheckpointWriter(Hook):
    """After every epoch (the last hook of the epoch, so the best model and the early-stopping
    decision are final): one checkpoint."""

    def __init__(self, store: CheckpointStore, job: Job, hooks: Sequence[Hook]):
        self.store, self.job, self.hooks = store, job, list(hooks)

    def after_epoch(self, task, state: State) -> None:
        number = state.epoch + 1
        previous = self.store.names()
        record = {
            "format": FORMAT,
            "algorithm": self.job.algorithm.name,
            "seed": self.job.seed,
            "hyperparameters": _jsonable(self.job.hyperparameters),
            "engine": state.state_dict(),
            "finished": state.stop_reason,
            "hooks": {h.state_key: h.state_dict() for h in self.hooks if h.state_key},
            "task": task.state_dict(),
        }

        def fill(directory: Path) -> None:
            task.save_state(directory)
            copy_model_dir(
                self.job.paths.model_dir, directory / MODEL, previous[0] / MODEL if previous else None
            )

        path = self.store.write(number, record, fill)
        log.info("Wrote checkpoint %s (epoch %d)", path, state.epoch)


def store_for(job: Job) -> CheckpointStore | None:
    """The job's checkpoint store, or None when the job has no CheckpointConfig."""
    paths = job.paths
    settings = config.parse_checkpoint_config(config.load_json(paths.checkpoint_config, required=False))
    if settings is None:
        log.info("Checkpoint loading and saving are disabled.")
        return None
    directory = paths.under_root(settings.local_path)
    log.info("Checkpoints are written to and resumed from %s", directory)
    return CheckpointStore(directory)


def restore(checkpoint: Checkpoint, task, hooks: Sequence[Hook], job: Job, must_match: Sequence[str]) -> dict:
    """Load a checkpoint into a set-up task and its hooks; return the engine state to resume."""
    saved = checkpoint.state
    if saved.get("algorithm") != job.algorithm.name:
        raise ClientError(
            f"checkpoint {checkpoint.path}: written by algorithm {saved.get('algorithm')!r}, this job is "
            f"{job.algorithm.name!r}; use another CheckpointConfig S3Uri"
        )
    current = _jsonable(job.hyperparameters)
    changed = changed_hyperparameters(saved["hyperparameters"], current)
    fixed = [
        f"{k}: the checkpoint has {changed[k][0]!r}, this job {changed[k][1]!r}"
        for k in must_match
        if k in changed
    ]
    if fixed:
        raise ClientError(
            [
                f"checkpoint {checkpoint.path} is from a different network; use another CheckpointConfig S3Uri",
                *fixed,
            ]
        )
    engine = saved["engine"]
    keep_optimizer = not (set(changed) - set(RESUMABLE_CHANGES))
    for name, (old, new) in changed.items():
        log.warning("Resuming with a changed hyperparameter: %s was %r, now %r", name, old, new)
    if not keep_optimizer:
        log.warning(
            "Optimizer states are not restored because hyperparameters other than %s changed; the "
            "learning-rate schedule continues from update %d",
            ", ".join(RESUMABLE_CHANGES),
            engine["step"],
        )
    task.load_state(checkpoint.path, engine["step"], optimizer=keep_optimizer)
    task.load_state_dict(saved["task"])
    for hook in hooks:
        if hook.state_key in saved["hooks"]:
            hook.load_state_dict(saved["hooks"][hook.state_key])
    # Only the primary writes the model directory (SDK local mode mounts one for every host).
    files = restore_model_dir(checkpoint.path / MODEL, job.paths.model_dir) if job.resource.is_primary else []
    log.info(
        "Resuming from checkpoint %s: epochs 0 to %d are done, training continues with epoch %d "
        "(model files restored: %s)",
        checkpoint.path,
        engine["epoch"],
        engine["epoch"] + 1,
        ", ".join(files) or "none",
    )
    return engine
