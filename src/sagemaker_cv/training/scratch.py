"""Scratch space for prepared data (RecordIO packed from .lst images, indexes, cleaned copies).

It lives on the ml root's volume, `<ml root>/input/sagemaker-cv-scratch`: on SageMaker the large
volume is the one under /opt/ml (VolumeSizeInGB), not /tmp, and /opt/ml/model, /opt/ml/output and
/opt/ml/checkpoints are uploaded, so it is in none of them. Each run holds a lock in its own
directory; a directory whose lock nobody holds is a leftover of a killed run (SIGKILL, spot
reclaim, out of memory) and is removed when the next run starts.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sagemaker_cv.contract import logs
from sagemaker_cv.contract.errors import ClientError
from sagemaker_cv.contract.paths import MLPaths

log = logs.get()
LOCK = ".lock"
YOUNG = 60.0  # seconds: a lockless directory this new may be a run that is still starting


def _size(path: Path) -> int:
    total = 0
    for root, _, names in os.walk(path):
        for name in names:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def _abandoned(run: Path, now: float) -> bool:
    """Whether no live process owns `run` (its lock is free, or it never got one and is old)."""
    try:
        fd = os.open(run / LOCK, os.O_RDWR)
    except FileNotFoundError:
        try:
            return now - run.stat().st_mtime > YOUNG
        except OSError:
            return False
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)  # releases the probe's lock


def remove_leftovers(base: Path) -> list[str]:
    """Remove the run directories under `base` that no live process owns; describe each."""
    removed = []
    now = time.time()
    for run in sorted(base.iterdir()) if base.is_dir() else []:
        if run.is_dir() and not run.is_symlink() and _abandoned(run, now):
            size = _size(run)
            shutil.rmtree(run, ignore_errors=True)
            removed.append(f"{run} ({size / 2**20:.1f} MiB)")
    return removed


@contextmanager
def scratch_space(paths: MLPaths) -> Iterator[Path]:
    """A directory of this run's own under the ml root, removed when the run ends."""
    base = paths.scratch_dir
    try:
        base.mkdir(parents=True, exist_ok=True)
        removed = remove_leftovers(base)
        run = Path(tempfile.mkdtemp(prefix="run-", dir=base))
        lock = os.open(run / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise ClientError(
            f"{base}: cannot create the scratch directory for prepared data ({exc.strerror}); "
            "the ml root's input directory must be writable"
        ) from None
    for text in removed:
        log.info("Removed scratch files an earlier run left behind: %s", text)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # held until this process ends, however it ends
        yield run
    finally:
        shutil.rmtree(run, ignore_errors=True)
        os.close(lock)
