"""Helpers of the table-driven bad-input tests: run `validate` in this process on a broken copy of a
small tree, and check that the outcome is the expected exit code with a failure file that names
what is wrong in the user's terms."""

from __future__ import annotations

import json
import shutil
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from sagemaker_cv import cli

#: text of MXNet's, OpenCV's, Pillow's or Python's internals that must never reach a failure file
INTERNALS = (
    "Traceback",
    'File "',
    "MXNetError",
    "Stack trace",
    "[bt]",
    "cv::",
    "OpenCV(",
    "DecompressionBomb",
    "RecursionError",
    "OverflowError",
    "set_int_max_str_digits",
    "AlgorithmError: AlgorithmError",
)


@dataclass(frozen=True)
class Case:
    """One broken input: how to break a copy of the tree, the exit code and the words its failure
    file must hold (and must not hold)."""

    id: str
    edit: Callable[[Path], None]
    code: int
    words: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()


def validate(base: Path, work: Path, algorithm: str, edit: Callable[[Path], None]) -> tuple[int, str | None]:
    """Copy `base` to `work`, break it with `edit`, run `sagemaker-cv validate` in this process."""
    root = Path(shutil.copytree(base, work, symlinks=True))
    edit(root)
    code = cli.main(["validate", "--algorithm", algorithm, "--ml-root", str(root)])
    failure = root / "output" / "failure"
    return code, failure.read_text() if failure.exists() else None


def check(case: Case, code: int, failure: str | None) -> None:
    assert code == case.code, failure
    if case.code == 0:
        assert failure is None, failure
        return
    assert failure is not None and failure.startswith("ClientError: " if code == 2 else "AlgorithmError: ")
    for word in case.words:
        assert word in failure, (word, failure)
    for word in (*case.absent, *INTERNALS):
        assert word not in failure, (word, failure)


# ---- ways to break a tree --------------------------------------------------------------------------


def set_hyperparameters(**changes) -> Callable[[Path], None]:
    def edit(root: Path) -> None:
        path = root / "input/config/hyperparameters.json"
        hp = json.loads(path.read_text())
        hp.update({k: str(v) for k, v in changes.items()})
        path.write_text(json.dumps(hp))

    return edit


def write(relative: str, content: bytes | str) -> Callable[[Path], None]:
    def edit(root: Path) -> None:
        path = root / "input/data" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() or path.is_symlink():
            path.unlink()
        path.write_bytes(content if isinstance(content, bytes) else content.encode())

    return edit


def fifo(relative: str) -> Callable[[Path], None]:
    def edit(root: Path) -> None:
        import os

        path = root / "input/data" / relative
        path.unlink(missing_ok=True)
        os.mkfifo(path)

    return edit


def link_outside(relative: str) -> Callable[[Path], None]:
    """`relative` (in input/data) becomes a symlink to a copy of itself outside the ml root."""

    def edit(root: Path) -> None:
        path = root / "input/data" / relative
        outside = root.parent / f"outside{path.suffix}"
        outside.write_bytes(path.read_bytes())
        path.unlink()
        path.symlink_to(outside)

    return edit


def link_loop(relative: str) -> Callable[[Path], None]:
    """`relative` and a sibling become symlinks to each other."""

    def edit(root: Path) -> None:
        path = root / "input/data" / relative
        other = path.with_name("loop-" + path.name)
        path.unlink(missing_ok=True)
        path.symlink_to(other.name)
        other.symlink_to(path.name)

    return edit


def edit_json(relative: str, change: Callable[[dict], object]) -> Callable[[Path], None]:
    def edit(root: Path) -> None:
        path = root / "input/data" / relative
        doc = json.loads(path.read_text())
        change(doc)
        path.write_text(json.dumps(doc))

    return edit


def both(*edits: Callable[[Path], None]) -> Callable[[Path], None]:
    def edit(root: Path) -> None:
        for one in edits:
            one(root)

    return edit


def png_header(width: int, height: int, mode: int = 2) -> bytes:
    """A PNG whose header declares width x height (colour type `mode`) and that holds no pixels:
    enough for a size check from the header, and never decodable."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, mode, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def deep(depth: int) -> str:
    return "[" * depth + "]" * depth
