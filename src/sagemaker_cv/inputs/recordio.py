"""RecordIO as MXNet writes it (im2rec, MXRecordIO), shared by every algorithm that reads it.

A channel may hold several .rec files (large datasets, ShardedByS3Key): `find_shards` lists them
in a stable order and `read_shards` reads them as one dataset; `write_index` indexes their
concatenation, which MXNet's iterators read as one file (`joined_path`). Pipe mode delivers that
same concatenation as one stream: `iter_records` reads either.

The framing is read here in Python rather than through MXNet's reader, so that a damaged file
is reported as the file, the record, the byte offset and what was expected there (MXNet's reader
answers with a C++ traceback), and so that a stream needs no seeking. The framing, from dmlc-core's
recordio.h: every part is [magic 0xced7230a][lrec][data, zero-padded to 4 bytes], little-endian;
lrec's upper 3 bits are a continuation flag (0 whole record, 1 first part, 2 middle, 3 last) and
its lower 29 bits the data length. The writer splits a record wherever its data holds the magic
number at an aligned position; the reader puts the magic back between the parts.

What a record's label means is the algorithm's business.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from sagemaker_cv.contract.errors import ClientError
from sagemaker_cv.contract.files import inside, open_regular, os_problem

MAGIC = 0xCED7230A
MAGIC_BYTES = struct.pack("<I", MAGIC)
_HEADER = struct.Struct("<II")
_LENGTH_MASK = (1 << 29) - 1
#: dmlc's writer refuses larger records; a longer chain of parts means a damaged file
MAX_RECORD_BYTES = 1 << 29
MAX_LISTED = 12  # problems listed by name before "and N more"
FIX = "re-create the file with MXNet's im2rec (python -m mxnet.tools.im2rec)"


class Problems:
    """Problems found in a data set: the first MAX_LISTED by name, then a count."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self.extra = 0

    def add(self, text: str) -> None:
        if len(self.items) < MAX_LISTED:
            self.items.append(text)
        else:
            self.extra += 1

    def __bool__(self) -> bool:
        return bool(self.items)

    def as_list(self) -> list[str]:
        return self.items + ([f"... and {self.extra} more problem(s) of the same kind"] if self.extra else [])


@dataclass(frozen=True)
class Record:
    number: int  # 1-based within its file, for messages
    offset: int  # byte offset of the record's first header in its file (an .idx entry)
    size: int  # framed bytes from offset to the next record
    payload: bytes


def _damaged(name: str, number: int, offset: int, what: str, fix: str = FIX) -> ClientError:
    before = f"; {number - 1} record(s) before it are intact" if number > 1 else ""
    return ClientError(f"{name}: record {number} at byte offset {offset} {what}{before}; {fix}")


def _read_exactly(stream: BinaryIO, size: int) -> bytes:
    """`size` bytes, or fewer only at the end of the stream (a FIFO may return short reads)."""
    data = stream.read(size)
    while data is not None and len(data) < size:
        more = stream.read(size - len(data))
        if not more:
            break
        data += more
    return data


def iter_records(stream: BinaryIO, name: str) -> Iterator[Record]:
    """Every record of a RecordIO stream, in order (a file, or a Pipe-mode FIFO: no seeking).

    `name` (e.g. `train/part-0.rec`) names the source in errors; a damaged or truncated stream is
    a ClientError that says where reading stopped and what was expected there."""
    position = 0
    number = 0
    while True:
        number += 1
        start = position
        parts: list[bytes] = []
        total = 0
        while True:
            header = _read_exactly(stream, _HEADER.size)
            position += len(header)
            if not header and not parts:
                return
            if len(header) < _HEADER.size:
                got = f"{len(header)} stray byte(s) where a record header (8 bytes) should start"
                if parts:
                    got = "cut off inside a record split into parts"
                raise _damaged(name, number, start, f"is truncated: {got}", _TRUNCATED_FIX)
            magic, lrec = _HEADER.unpack(header)
            if magic != MAGIC:
                raise _damaged(
                    name,
                    number,
                    position - _HEADER.size,
                    f"is not RecordIO: expected the RecordIO magic number 0x{MAGIC:08x}, found 0x{magic:08x} "
                    "(the file is damaged, or was not written by MXNet's RecordIO writer)",
                )
            flag, length = lrec >> 29, lrec & _LENGTH_MASK
            if flag > 3 or (flag in (0, 1)) != (not parts):
                raise _damaged(
                    name,
                    number,
                    position - _HEADER.size,
                    f"is not RecordIO: continuation flag {flag} where a "
                    + ("new record" if not parts else "continued record")
                    + " should start (the file is damaged)",
                )
            padded = (length + 3) & ~3
            total += length
            if total > MAX_RECORD_BYTES:
                raise _damaged(
                    name, number, start, f"claims more than {MAX_RECORD_BYTES} bytes (the file is damaged)"
                )
            data = _read_exactly(stream, padded)
            position += len(data)
            if len(data) < padded:
                raise _damaged(
                    name,
                    number,
                    start,
                    f"is truncated: its header announces {length} bytes but the file ends "
                    f"{len(data)} bytes later",
                    _TRUNCATED_FIX,
                )
            parts.append(data[:length])
            if flag in (0, 3):
                break
        payload = parts[0] if len(parts) == 1 else MAGIC_BYTES.join(parts)
        yield Record(number, start, position - start, payload)


_TRUNCATED_FIX = f"upload the whole file again or {FIX.replace('re-create the file', 're-create it')}"


def iter_payloads(stream: BinaryIO, name: str) -> Iterator[bytes]:
    """The payloads of `iter_records`, split records joined."""
    for record in iter_records(stream, name):
        yield record.payload


def read_records(path: Path, name: str) -> Iterator[Record]:
    """Every record of a .rec file in order; `name` (e.g. `train/data.rec`) names it in errors."""
    with open_regular(path, name) as f:
        try:
            yield from iter_records(f, name)
        except OSError as exc:
            raise ClientError(os_problem(name, exc)) from None


_IR_HEADER = struct.Struct("IfQQ")  # mx.recordio's IRHeader: flag, label, id, id2


def unpack_image_record(payload: bytes) -> tuple[int, np.ndarray, bytes] | str:
    """(id, label vector, image bytes) of an image record (mx.recordio.pack's IRHeader: flag,
    label, id, id2; with flag > 0, flag float32 labels follow the header), or why it is not one.
    Unlike mx.recordio.unpack, a header that claims more labels than the record holds is a
    problem, not a ValueError."""
    if len(payload) < _IR_HEADER.size:
        return "too short to hold an image record header; make the file with im2rec"
    flag, label, record_id, _ = _IR_HEADER.unpack_from(payload)
    start = _IR_HEADER.size
    if flag == 0:
        return record_id, np.array([label], dtype=np.float32), payload[start:]
    if flag * 4 > len(payload) - start:
        return (
            f"header (id {record_id}) claims {flag} labels, more than the "
            f"{len(payload) - start} bytes after it hold; make the file with im2rec"
        )
    labels = np.frombuffer(payload, dtype=np.float32, count=flag, offset=start)
    return record_id, labels, payload[start + flag * 4 :]


# ---- several files as one dataset --------------------------------------------------------------


@dataclass(frozen=True)
class Shard:
    path: Path
    name: str  # `train/part-0.rec`: the channel and the path inside it, for messages


def find_shards(directory: Path, channel: str, suffix: str = ".rec") -> list[Shard]:
    """Every `suffix` file under a File-mode channel directory (recursively), sorted by their
    path inside the channel: the stable order in which they form one dataset. A file that is
    not a regular file, or a symlink that leaves the channel, is a ClientError naming it."""
    if not directory.is_dir():
        return []
    problems: list[str] = []
    shards: list[Shard] = []
    found = sorted(
        (p for p in directory.rglob(f"*{suffix}") if not p.is_dir() or p.is_symlink()),
        key=lambda p: p.relative_to(directory).as_posix(),
    )
    for path in found:
        name = f"{channel}/{path.relative_to(directory).as_posix()}"
        if not inside(path, directory):
            problems.append(
                f"{name}: is a symlink to a file outside the {channel} channel; copy the file into the channel"
            )
            continue
        try:
            open_regular(path, name).close()
        except ClientError as exc:
            problems.extend(exc.problems)
            continue
        shards.append(Shard(path, name))
    if problems:
        raise ClientError(problems)
    return shards


def read_shards(shards: Sequence[Shard]) -> Iterator[tuple[Shard, Record]]:
    """Every record of every shard, shard by shard, in order."""
    for shard in shards:
        for record in read_records(shard.path, shard.name):
            yield shard, record


def describe(shards: Sequence[Shard], channel: str) -> str:
    """How messages name a channel's data: the file, or the channel and its file count."""
    if len(shards) == 1:
        return shards[0].name
    return f"{channel} ({len(shards)} .rec files)"


def record_offsets(path: Path) -> Iterator[int]:
    """The offset of every record of a file that was read once already (headers only, seeking
    over the data)."""
    with open(path, "rb") as f:
        position = 0
        first = True
        while True:
            header = f.read(_HEADER.size)
            if len(header) < _HEADER.size:
                return
            _, lrec = _HEADER.unpack(header)
            flag, length = lrec >> 29, lrec & _LENGTH_MASK
            if flag in (0, 1) and first:
                yield position
            first = flag in (0, 3)
            position += _HEADER.size + ((length + 3) & ~3)
            f.seek(position)


def write_index(idx: Path, files: Sequence[Path]) -> int:
    """An .idx for the concatenation of `files` (each record's offset in it, numbered from 0),
    written as the files are walked; returns the number of records."""
    count = 0
    base = 0
    with open(idx, "w") as out:
        for path in files:
            for offset in record_offsets(path):
                out.write(f"{count}\t{base + offset}\n")
                count += 1
            base += os.path.getsize(path)
    return count


def joined_path(files: Iterable[Path], scratch: Path) -> str:
    """The `path_imgrec` under which MXNet reads `files` as one: dmlc-core splits the URI at ';',
    so a file whose path holds one is reached through a symlink in `scratch`."""
    parts = []
    for i, path in enumerate(files):
        if ";" in str(path):
            link = scratch / f"shard-{i:05d}.rec"
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(path.resolve())
            path = link
        parts.append(str(path))
    return ";".join(parts)


def copy_records(src: Path, dst: Path, drop: set[int]) -> None:
    """Copy a file's records except those numbered (1-based) in `drop`, frames byte for byte."""
    with open(src, "rb") as source, open(dst, "wb") as out:
        for record in iter_records(source, src.name):
            if record.number in drop:
                continue
            # Re-read the frames rather than re-encode: a split record stays split as MXNet wrote it.
            here = source.tell()
            source.seek(record.offset)
            out.write(source.read(record.size))
            source.seek(here)


def frame(payload: bytes) -> bytes:
    """A record's bytes exactly as dmlc-core's writer frames them: split wherever the data holds
    the magic number at an aligned position (so that a reader resynchronising on the magic never
    starts inside a record), the magic itself dropped, the last part zero-padded to 4 bytes."""
    if len(payload) >= MAX_RECORD_BYTES:
        raise ValueError(f"a RecordIO record holds less than {MAX_RECORD_BYTES} bytes, got {len(payload)}")
    aligned = len(payload) & ~3
    words = np.frombuffer(payload, dtype="<u4", count=aligned // 4)
    cuts = (np.flatnonzero(words == MAGIC) * 4).tolist()
    out = []
    start = 0
    for cut in cuts:
        out += [_HEADER.pack(MAGIC, ((1 if start == 0 else 2) << 29) | (cut - start)), payload[start:cut]]
        start = cut + 4
    last = len(payload) - start
    out += [_HEADER.pack(MAGIC, ((3 if cuts else 0) << 29) | last), payload[start:], b"\0" * (-last % 4)]
    return b"".join(out)


class RecordWriter:
    """Writes records and streams their offsets into an .idx, so that memory does not grow with
    the dataset."""

    def __init__(self, rec: Path, idx: Path):
        self._rec = open(rec, "wb")  # noqa: SIM115 - closed in close()
        self._idx = open(idx, "w")  # noqa: SIM115
        self.count = 0
        self.offset = 0

    def write(self, payload: bytes) -> None:
        data = frame(payload)
        self._rec.write(data)
        self._idx.write(f"{self.count}\t{self.offset}\n")
        self.count += 1
        self.offset += len(data)

    def close(self) -> None:
        self._rec.close()
        self._idx.close()
