"""Where the model goes: checked before any data is read, owned by the run that writes it.

Framework-free: the CLI checks `--model-archive` with it before it imports MXNet.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from sagemaker_cv.contract import logs
from sagemaker_cv.contract.errors import ClientError
from sagemaker_cv.contract.files import TEMP_PREFIX

log = logs.get()


def _writable(directory: Path) -> str | None:
    """Why no file can be created in `directory`, or None (a probe: root ignores mode bits, not
    read-only mounts)."""
    try:
        fd, probe = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=directory)
    except OSError as exc:
        return exc.strerror or str(exc)
    os.close(fd)
    os.unlink(probe)
    return None


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_model_dir(model_dir: Path) -> None:
    """The model directory is a writable directory, or can be made one: found out before the
    data is read, not when the first epoch is saved."""
    if model_dir.exists() and not model_dir.is_dir():
        raise ClientError(f"{model_dir}: is not a directory; the model is written into this directory")
    existing = _nearest_existing(model_dir)
    if not existing.is_dir():
        raise ClientError(f"{model_dir}: cannot be created, {existing} is not a directory")
    problem = _writable(existing)
    if problem:
        raise ClientError(f"{model_dir}: the model cannot be written there ({problem})")


def clear_model_dir(model_dir: Path, patterns: Sequence[str]) -> None:
    """Remove the files an earlier run of this algorithm left in the model directory (after a
    SIGKILL and a rerun, a loader taking the highest epoch would pick the killed run's weights),
    and our half-written temporary files. Other files are the user's and stay."""
    if not model_dir.is_dir():
        return
    removed = set()
    for pattern in (*patterns, TEMP_PREFIX + "*"):
        for path in model_dir.glob(pattern):
            if path.is_file() or path.is_symlink():
                path.unlink()
                removed.add(path.name)
    if removed:
        log.info(
            "Removed the model files an earlier run left in %s (this run writes its own): %s",
            model_dir,
            ", ".join(sorted(removed)),
        )


def check_archive_target(target: Path, model_dir: Path) -> None:
    """`--model-archive PATH`: a file outside the model directory in a writable directory."""
    resolved, model = target.resolve(), model_dir.resolve()
    if resolved == model or model in resolved.parents:
        raise ClientError(f"--model-archive {target}: must not be inside the model directory {model_dir}")
    if target.is_dir():
        raise ClientError(f"--model-archive {target}: is a directory; give the path of the .tar.gz to write")
    existing = _nearest_existing(resolved.parent)
    problem = "not a directory" if not existing.is_dir() else _writable(existing)
    if problem:
        raise ClientError(f"--model-archive {target}: cannot be written in {existing} ({problem})")
