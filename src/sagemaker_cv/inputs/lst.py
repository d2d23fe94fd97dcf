"""The `.lst` image list: `index<TAB>label(s)<TAB>relative/path`. Pure parsing, no image I/O.

Lines are parsed one at a time (`iter_lst`), so a list of millions of images is never held whole;
`IndexTracker` finds repeated indices across every .lst file of a channel in 20 bytes per line.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath

import numpy as np

from sagemaker_cv.contract import numbers

MAX_LINE = 1 << 20  # characters; a longer "line" is not a .lst line (e.g. a binary file)


@dataclass(frozen=True)
class LstEntry:
    line: int  # 1-based, for error messages
    index: int
    labels: tuple[float, ...]
    path: str
    source: str = ""  # the .lst file, as messages name it


@dataclass(frozen=True)
class LstProblem:
    line: int
    text: str  # the whole message, naming source:line


def parse_line(raw: str, source: str, lineno: int, label_count: int | None) -> LstEntry | LstProblem | None:
    """One line: an entry, a problem, or None for a blank line."""
    line = raw.strip()
    if not line:
        return None
    where = f"{source}:{lineno}"

    def problem(text: str) -> LstProblem:
        return LstProblem(lineno, f"{where}: {text}")

    cols = raw.rstrip("\r\n").split("\t") if "\t" in raw else line.split()
    cols = [c.strip() for c in cols]
    if len(cols) < 3:
        return problem(f"expected 'index<TAB>label<TAB>path', got {len(cols)} column(s)")
    index_text, *label_texts, path = cols
    if not numbers.is_integer(index_text):
        return problem(f"image index {short_repr(index_text)} is not an integer")
    index = int(float(index_text))
    if not all(numbers.is_decimal(v) for v in label_texts):
        return problem(f"labels {short_repr(label_texts)} must be numbers")
    labels = tuple(float(v) for v in label_texts)
    if any(not math.isfinite(v) for v in labels):
        return problem(f"labels {short_repr(label_texts)} must be finite numbers")
    if label_count is not None and len(labels) != label_count:
        return problem(
            f"{len(labels)} label column(s), expected {label_count}"
            + (" (one 0/1 column per class for multi_label=1)" if label_count > 1 else "")
        )
    bad_path = check_relative_path(path)
    if bad_path:
        return problem(f"path {short_repr(path)} {bad_path}")
    return LstEntry(lineno, index, labels, path, source)


def bounded_lines(readline: Callable[[int], str]) -> Iterator[str]:
    """Lines from a text stream's `readline`, each cut at MAX_LINE characters (the rest of an
    overlong line is skipped, so line numbers stay right and memory stays bounded)."""
    while True:
        line = readline(MAX_LINE)
        if not line:
            return
        if len(line) >= MAX_LINE and not line.endswith("\n"):
            while (rest := readline(MAX_LINE)) and not rest.endswith("\n"):
                pass
        yield line


def iter_lst(
    lines: Iterable[str], source: str, *, label_count: int | None
) -> Iterator[LstEntry | LstProblem]:
    """Entries and problems line by line (repeated indices are IndexTracker's business).

    label_count: how many label columns each line must have (1, or num_classes for multi-hot);
    None accepts any count >= 1 (detection lists carry a header and boxes)."""
    for lineno, raw in enumerate(lines, start=1):
        if lineno == 1 and raw.startswith("\ufeff"):  # a byte-order mark (Windows editors, Excel)
            raw = raw[1:]
        if len(raw) >= MAX_LINE:
            yield LstProblem(lineno, f"{source}:{lineno}: line longer than {MAX_LINE} characters")
            continue
        item = parse_line(raw, source, lineno, label_count)
        if item is not None:
            yield item


class IndexTracker:
    """Image indices seen across the .lst files of one channel, kept compactly; repeats are
    reported once every line was seen."""

    def __init__(self) -> None:
        self.sources: list[str] = []
        self._index = array("q")
        self._source = array("i")
        self._line = array("q")

    def add(self, entry: LstEntry) -> None:
        if not self.sources or self.sources[-1] != entry.source:
            self.sources.append(entry.source)
        self._index.append(entry.index)
        self._source.append(len(self.sources) - 1)
        self._line.append(entry.line)

    def _repeats(self) -> tuple[np.ndarray, np.ndarray]:
        """(positions of the lines that repeat an index, positions of the first line with it), in
        reading order."""
        index = np.frombuffer(self._index, dtype=np.int64)
        order = np.argsort(index, kind="stable")  # among equal indices, the first line comes first
        ordered = index[order]
        same = ordered[1:] == ordered[:-1]
        group_start = np.maximum.accumulate(np.where(np.r_[False, same], 0, np.arange(len(ordered))))
        repeats = np.flatnonzero(np.r_[False, same])
        here, first = order[repeats], order[group_start[repeats]]
        by_line = np.argsort(here, kind="stable")
        return here[by_line], first[by_line]

    def problems(self, limit: int | None = None) -> tuple[list[LstProblem], int]:
        """The lines that repeat an earlier line's index, naming both (the first `limit` of
        them), and how many there are in all."""
        if not self._index:
            return [], 0
        here, first = self._repeats()
        found = []
        for pos, original in zip(here[:limit].tolist(), first[:limit].tolist()):
            source, other = self.sources[self._source[pos]], self.sources[self._source[original]]
            line, other_line, value = self._line[pos], self._line[original], self._index[pos]
            if source == other:
                text = f"image index {value} repeats line {other_line}; indices must be unique"
            else:
                text = (
                    f"image index {value} repeats {other}:{other_line}; indices must be unique across "
                    "the channel's .lst files (is an old copy left beside the new one?)"
                )
            found.append(LstProblem(line, f"{source}:{line}: {text}"))
        return found, len(here)


def parse_lst(text: str, source: str, *, label_count: int | None = None) -> tuple[list[LstEntry], list[str]]:
    """Parse a whole .lst file's text. Returns the entries and every problem found (naming
    source:line), in line order."""
    entries: list[LstEntry] = []
    problems: list[LstProblem] = []
    tracker = IndexTracker()
    for item in iter_lst(text.splitlines(), source, label_count=label_count):
        if isinstance(item, LstProblem):
            problems.append(item)
        else:
            entries.append(item)
            tracker.add(item)
    repeated, _ = tracker.problems()
    if repeated:
        dropped = {p.line for p in repeated}
        entries = [e for e in entries if e.line not in dropped]
        problems = sorted([*problems, *repeated], key=lambda p: p.line)
    return entries, [p.text for p in problems]


def check_relative_path(path: str) -> str | None:
    """Why a path from a data file may not be used, or None: it must stay inside its channel."""
    if any(ord(c) < 32 for c in path):
        return "contains a control character (such as a NUL byte); paths must be plain text"
    p = PurePosixPath(path.replace("\\", "/"))
    if p.is_absolute():
        return "is absolute; paths must be relative to the channel directory"
    if ".." in p.parts:
        return "leaves the channel directory; paths must be relative to the channel directory"
    if not p.parts:
        return "is empty"
    return None


def short_repr(value: object) -> str:
    """repr() cut to 80 characters, for messages that quote the user's values."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
