"""Reading the user's files under /opt/ml and writing ours, safely. No framework imports.

* A File-mode channel must hold regular files: opening a FIFO for reading blocks until a writer
  appears (forever, in a training job), so files are opened non-blocking and checked before a byte
  is read.
* Data files may point (through symlinks) only inside their own channel.
* Text files may start with a UTF-8 byte-order mark (Windows editors, Excel exports).
* Model files are written under a temporary name and renamed, so a killed job never leaves a
  truncated file that a loader would take for a model.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from sagemaker_cv.contract.errors import ClientError

#: our temporary files in the model directory; a run removes those an earlier (killed) run left
TEMP_PREFIX = ".sagemaker-cv-tmp-"
BOM = "\ufeff"


def file_kind(mode: int) -> str:
    """What a non-regular file is, in words."""
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def os_problem(name: str, exc: OSError | ValueError, what: str = "cannot be read") -> str:
    """One line for a file the user gave that the system refused: `name` and the reason."""
    if isinstance(exc, ValueError):  # e.g. "embedded null byte"
        return f"{name}: {what} ({exc})"
    if exc.errno == errno.ENOENT:
        return f"{name}: not found"
    return f"{name}: {what} ({exc.strerror or exc})"


def open_regular(path: Path, name: str) -> BinaryIO:
    """Open a user's file for reading; ClientError (naming `name`) unless it is a readable regular file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except (OSError, ValueError) as exc:
        raise ClientError(os_problem(name, exc)) from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise ClientError(f"{name}: is {file_kind(mode)}; File-mode input must be regular files")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bytes(path: Path, name: str, limit: int | None = None) -> bytes:
    """A whole regular file; `limit` bytes at most (a larger file is a ClientError naming it)."""
    with open_regular(path, name) as f:
        if limit is not None:
            size = os.fstat(f.fileno()).st_size
            if size > limit:
                raise ClientError(f"{name}: {size} bytes, more than the {limit} this file may hold")
        try:
            return f.read()
        except OSError as exc:
            raise ClientError(os_problem(name, exc)) from None


def decode_text(data: bytes, name: str, *, strict: bool = True) -> str:
    """UTF-8 text without a leading byte-order mark. strict=False replaces undecodable bytes."""
    try:
        text = data.decode("utf-8", errors="strict" if strict else "replace")
    except UnicodeDecodeError as exc:
        raise ClientError(
            f"{name}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); save it as UTF-8"
        ) from None
    return text[1:] if text.startswith(BOM) else text


def read_text(path: Path, name: str, *, limit: int | None = None, strict: bool = True) -> str:
    """A user's text file (.lst, JSON annotations, label maps, config files), BOM removed."""
    return decode_text(read_bytes(path, name, limit), name, strict=strict)


def inside(path: Path, root: Path) -> bool:
    """Whether `path`, with every symlink followed, lies inside `root` (also resolved)."""
    try:
        resolved, base = path.resolve(), root.resolve()
    except (OSError, RuntimeError, ValueError):  # symlink loops, NUL bytes
        return False
    return resolved == base or base in resolved.parents


def disk_full(path: Path, what: str) -> ClientError:
    """ENOSPC/EDQUOT while writing `path`: name it, say how much is free and what to do."""
    try:
        free = f"{shutil.disk_usage(path if path.is_dir() else path.parent).free / 2**20:.0f} MiB free"
    except OSError:
        free = "free space unknown"
    return ClientError(
        f"{path}: no space left on the device ({free}) while {what}; give the job a larger volume "
        "(VolumeSizeInGB) or less data"
    )


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


@contextmanager
def full_disk_named(path: Path, what: str) -> Iterator[None]:
    """A full disk while writing `path` is the user's to fix (a larger volume): say where, how
    full, and what was being written."""
    try:
        yield
    except OSError as exc:
        if is_disk_full(exc):
            raise disk_full(path, what) from None
        raise


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """A temporary path beside `target` to write into; renamed to `target` only when the block
    ends without an exception (a rename within one directory is atomic)."""
    temp = target.with_name(TEMP_PREFIX + target.name)
    try:
        yield temp
        os.replace(temp, target)
    finally:
        if temp.exists():
            temp.unlink()


def write_text_atomic(target: Path, text: str) -> None:
    with atomic_path(target) as temp:
        temp.write_text(text)
