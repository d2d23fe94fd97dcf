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
import json
import os
import shutil
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
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


#: how deeply a user's JSON file may nest lists and objects: annotations and label maps nest a few
#: levels (COCO polygons five); deeper only exhausts the parser's recursion
JSON_DEPTH = 32


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def json_problem(exc: Exception) -> str:
    """Why a text is not JSON, in the user's terms (no advice meant for Python programmers)."""
    if isinstance(exc, RecursionError):
        return "lists and objects nested too deeply"
    text = str(exc)
    if "digits" in text and "integer string conversion" in text:
        return "holds a number of more than 4300 digits"
    return text


def decode_json(text: str, name: str, *, depth: int | None = JSON_DEPTH, object_hook=None) -> object:
    """A user's JSON document: NaN and Infinity (which Python would accept) are refused, as are
    documents nested deeper than `depth` (None: as deep as the parser's recursion allows, for
    large documents that readers walk without recursion) and numbers too long to convert;
    ClientError names `name`."""
    try:
        value = json.loads(text, parse_constant=_no_constant, object_hook=object_hook)
    except (ValueError, RecursionError) as exc:
        raise ClientError(f"{name}: not valid JSON ({json_problem(exc)})") from None
    if depth is not None and json_depth(value, depth) > depth:
        raise ClientError(f"{name}: lists and objects nested more than {depth} levels deep")
    return value


def json_depth(value: object, limit: int = JSON_DEPTH) -> int:
    """How deeply lists and objects nest in a decoded JSON value (iteratively: no recursion),
    counted up to `limit` + 1."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, dict)):
            deepest = max(deepest, depth)
            if depth <= limit:
                stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


def read_json(path: Path, name: str, *, limit: int | None = None, **options) -> object:
    """A user's JSON file (annotations, label maps): a readable regular file of UTF-8 JSON, a
    byte-order mark allowed; every other case is a ClientError naming `name`. `options` go to
    `decode_json`."""
    return decode_json(read_text(path, name, limit=limit), name, **options)


@dataclass(frozen=True)
class Listing:
    """A File-mode channel's files and a problem naming each entry that is not one. The refused
    entries' paths are kept too (relative to the channel): a reader that pairs files across
    channels (an image and its annotation or mask) must not report the partner of a refused file
    as "missing" a second time, nor anything that may lie in a directory it could not list."""

    files: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    refused: tuple[str, ...] = ()  # entries named in `problems` that were not read as files
    unlisted: tuple[str, ...] = ()  # directories whose files are unknown ("." is the channel)

    @property
    def refused_stems(self) -> set[str]:
        return {PurePosixPath(path).stem for path in self.refused}

    def withholds(self, key: str) -> bool:
        """Whether the file `key` (its path in the channel without suffix) may be one that this
        listing refused or could not see."""
        return any(PurePosixPath(path).with_suffix("").as_posix() == key for path in self.refused) or any(
            folder == "." or key.startswith(folder + "/") for folder in self.unlisted
        )


def channel_files(directory: Path, channel: str, wanted=None) -> tuple[list[Path], list[str]]:
    """`list_channel`'s files and problems."""
    listing = list_channel(directory, channel, wanted)
    return listing.files, listing.problems


def list_channel(directory: Path, channel: str, wanted=None) -> Listing:
    """Every file under a File-mode channel directory (recursively, sorted by its path in the
    channel) that `wanted(path)` accepts, and a problem naming each entry that cannot be read as
    one: a directory that cannot be listed, a FIFO, socket or device, a symlink that leaves the
    channel, points nowhere or loops. (Path.rglob skips unreadable directories silently, and a
    FIFO opened for reading blocks: neither may pass unseen.)"""
    found: list[Path] = []
    problems: list[str] = []
    refused: list[str] = []
    folders: list[str] = []

    def relative(path: str | Path) -> str:
        return Path(path).relative_to(directory).as_posix()

    def shown(path: str | Path) -> str:
        return channel if relative(path) == "." else f"{channel}/{relative(path)}"

    def unlisted(exc: OSError) -> None:
        problems.append(os_problem(shown(exc.filename), exc, "cannot be listed"))
        folders.append(relative(exc.filename))

    for top, dirs, names in os.walk(directory, onerror=unlisted):
        dirs.sort()
        for entry in [*(d for d in dirs if os.path.islink(os.path.join(top, d))), *names]:
            path = Path(top, entry)
            if wanted is not None and not wanted(path):
                continue
            try:
                mode = path.stat().st_mode
            except (OSError, ValueError) as exc:
                if path.is_symlink():
                    reason = (
                        "which does not exist"
                        if isinstance(exc, FileNotFoundError)
                        else f"({getattr(exc, 'strerror', None) or exc})"
                    )
                    problems.append(f"{shown(path)}: is a symlink to {os.readlink(path)} {reason}")
                else:
                    problems.append(os_problem(shown(path), exc))
                refused.append(relative(path))
                continue
            if path.is_symlink() and not inside(path, directory):
                problems.append(
                    f"{shown(path)}: is a symlink to {path.resolve()}, outside the {channel} channel; copy "
                    "the file into the channel"
                )
                (folders if stat.S_ISDIR(mode) else refused).append(relative(path))
            elif stat.S_ISDIR(mode):
                continue  # a symlink to a directory of the channel: its files are listed there
            elif not stat.S_ISREG(mode):
                problems.append(f"{shown(path)}: is {file_kind(mode)}; File-mode input must be regular files")
                refused.append(relative(path))
            else:
                found.append(path)
    found.sort(key=lambda p: p.relative_to(directory).as_posix())
    return Listing(found, problems, tuple(refused), tuple(folders))


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
