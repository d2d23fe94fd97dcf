"""Channel checks every algorithm shares: the input modes and channels this image does not read
yet are refused by name, in one place, so that adding one is one change here."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from sagemaker_cv.contract.config import Channel


def unsupported(
    channels: dict[str, Channel], known: Iterable[str], content_types: Iterable[str], algorithm: str
) -> list[str]:
    """Problems with channels this algorithm does not read, or reads in a mode it does not support."""
    known, content_types = tuple(known), tuple(content_types)
    problems: list[str] = []
    for name, ch in channels.items():
        if name == "model":
            problems.append(
                "channel 'model': incremental training from a model.tar.gz is not supported by this image; "
                "remove the channel"
            )
        elif name not in known:
            problems.append(f"channel {name!r}: not used by {algorithm} (expected {', '.join(known)})")
        if ch.input_mode == "Pipe":
            problems.append(f"channel {name!r}: Pipe input mode is not supported; use File or FastFile")
        if (ch.record_wrapper or "").lower() == "recordio":
            problems.append(
                f"channel {name!r}: RecordWrapperType=RecordIO (an augmented manifest) is not supported by "
                "this image; give the files themselves"
            )
        if name in known and ch.media_type and ch.media_type not in content_types:
            problems.append(
                f"channel {name!r} ContentType={ch.content_type!r}: expected one of {', '.join(content_types)}"
            )
    return problems


def rec_files(name: str, directory: Path, problems: list[str]) -> tuple[Path, ...]:
    """The .rec files of a RecordIO channel, in a stable order; a problem is added when there is
    not exactly one (readers take a list, so accepting several is a change here only)."""
    found = sorted(directory.rglob("*.rec")) if directory.is_dir() else []
    if len(found) != 1:
        problems.append(
            f"channel {name!r}: expected exactly one .rec file in {directory}, found "
            + (", ".join(p.name for p in found) if found else "none")
        )
        return ()
    return tuple(found)
