"""The `.lst` image list: `index<TAB>label(s)<TAB>relative/path`. Pure parsing, no image I/O."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import PurePosixPath


@dataclass(frozen=True)
class LstEntry:
    line: int  # 1-based, for error messages
    index: int
    labels: tuple[float, ...]
    path: str


def parse_lst(text: str, source: str, *, label_count: int | None = None) -> tuple[list[LstEntry], list[str]]:
    """Parse a .lst file's text. Returns the entries and every problem found (naming source:line).

    label_count: how many label columns each line must have (1, or num_classes for multi-hot);
    None accepts any count >= 1 (detection lists carry a header and boxes).
    """
    entries: list[LstEntry] = []
    problems: list[str] = []
    seen: dict[int, int] = {}
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        cols = raw.rstrip("\r\n").split("\t") if "\t" in raw else line.split()
        cols = [c.strip() for c in cols]
        where = f"{source}:{lineno}"
        if len(cols) < 3:
            problems.append(f"{where}: expected 'index<TAB>label<TAB>path', got {len(cols)} column(s)")
            continue
        index_text, *label_texts, path = cols
        try:
            index = int(float(index_text))
        except ValueError:
            problems.append(f"{where}: image index {index_text!r} is not an integer")
            continue
        try:
            labels = tuple(float(v) for v in label_texts)
        except ValueError:
            problems.append(f"{where}: labels {label_texts!r} must be numbers")
            continue
        if any(not math.isfinite(v) for v in labels):
            problems.append(f"{where}: labels {label_texts!r} must be finite numbers")
            continue
        if label_count is not None and len(labels) != label_count:
            problems.append(
                f"{where}: {len(labels)} label column(s), expected {label_count}"
                + (" (one 0/1 column per class for multi_label=1)" if label_count > 1 else "")
            )
            continue
        if index in seen:
            problems.append(
                f"{where}: image index {index} repeats line {seen[index]}; indices must be unique"
            )
            continue
        seen[index] = lineno
        problem = check_relative_path(path)
        if problem:
            problems.append(f"{where}: path {path!r} {problem}")
            continue
        entries.append(LstEntry(lineno, index, labels, path))
    return entries, problems


def check_relative_path(path: str) -> str | None:
    """Why a path from a data file may not be used, or None: it must stay inside its channel."""
    p = PurePosixPath(path.replace("\\", "/"))
    if p.is_absolute():
        return "is absolute; paths must be relative to the channel directory"
    if ".." in p.parts:
        return "leaves the channel directory; paths must be relative to the channel directory"
    if not p.parts:
        return "is empty"
    return None
