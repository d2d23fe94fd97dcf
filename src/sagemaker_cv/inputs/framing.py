"""MXNet's RecordIO framing, both ways, in plain Python (no MXNet): what a Pipe-mode FIFO carries.

A record on the wire is `magic` (uint32 0xced7230a, little-endian), `lrecord` (uint32: the upper 3
bits are cflag, the lower 29 the length), the payload, then zero padding to a 4-byte boundary.
dmlc-core's writer splits a payload wherever the magic appears at a 4-byte-aligned offset: the
parts carry cflag 1 (first), 2 (middle) and 3 (last), the magic itself is dropped, and the reader
puts it back between the parts. cflag 0 is a whole record. `encode` writes exactly the bytes
MXNet's MXRecordIO writes (a test compares them); `iter_payloads` reads them from any stream,
including a FIFO that cannot seek.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import BinaryIO

from sagemaker_cv.contract.errors import ClientError

MAGIC = 0xCED7230A
MAGIC_BYTES = struct.pack("<I", MAGIC)
MAX_LENGTH = (1 << 29) - 1
WHOLE, FIRST, MIDDLE, LAST = 0, 1, 2, 3
_HEADER = struct.Struct("<II")


def _pad(length: int) -> int:
    return (-length) % 4


def _frame(cflag: int, part: bytes) -> bytes:
    return _HEADER.pack(MAGIC, (cflag << 29) | len(part)) + part + b"\0" * _pad(len(part))


def encode(payload: bytes) -> bytes:
    """One record as MXNet's RecordIO writer frames it (split at every aligned magic)."""
    if len(payload) > MAX_LENGTH:
        raise ValueError(f"a RecordIO record holds at most {MAX_LENGTH} bytes, got {len(payload)}")
    out, start = [], 0
    for i in range(0, len(payload) - len(payload) % 4, 4):
        if payload[i : i + 4] == MAGIC_BYTES:
            out.append(_frame(FIRST if start == 0 else MIDDLE, payload[start:i]))
            start = i + 4
    out.append(_frame(WHOLE if start == 0 else LAST, payload[start:]))
    return b"".join(out)


def _read_exactly(stream: BinaryIO, size: int) -> bytes:
    """`size` bytes, or fewer only at the end of the stream (a FIFO returns short reads)."""
    chunks, got = [], 0
    while got < size:
        chunk = stream.read(size - got)
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def iter_payloads(stream: BinaryIO, source: str) -> Iterator[bytes]:
    """Every record's payload, split records joined, in stream order. `source` names the stream in
    errors (e.g. `/opt/ml/input/data/train_0`); they give the record number (1-based) and the byte
    offset, the value found and what was expected."""
    offset, number = 0, 0
    parts: list[bytes] = []
    while True:
        where = f"{source}: record {number + 1} at byte {offset}"
        header = _read_exactly(stream, 8)
        if not header:
            if parts:
                raise ClientError(
                    f"{where}: the stream ends inside a split record (its last part, cflag 3, is missing)"
                )
            return
        if len(header) < 8:
            raise ClientError(f"{where}: the stream ends inside a record header ({len(header)} of 8 bytes)")
        magic, lrecord = _HEADER.unpack(header)
        if magic != MAGIC:
            raise ClientError(
                f"{where}: expected the RecordIO magic 0x{MAGIC:08x}, found 0x{magic:08x}; the data must be "
                "MXNet RecordIO (im2rec .rec files, or RecordWrapperType=RecordIO), and only such files may "
                "be in the channel"
            )
        cflag, length = lrecord >> 29, lrecord & MAX_LENGTH
        if cflag > LAST:
            raise ClientError(f"{where}: cflag {cflag} is not a RecordIO part flag (0 whole, 1-3 split)")
        if (cflag in (WHOLE, FIRST)) == bool(parts):
            state = "inside a split record" if parts else "outside a split record"
            raise ClientError(
                f"{where}: cflag {cflag} {state}; expected cflag {'2 or 3' if parts else '0 or 1'}"
            )
        body = _read_exactly(stream, length + _pad(length))
        if len(body) < length + _pad(length):
            raise ClientError(
                f"{where}: the stream ends inside the record ({len(body)} of {length + _pad(length)} bytes)"
            )
        offset += 8 + len(body)
        parts.append(body[:length])
        if cflag in (WHOLE, LAST):
            number += 1
            yield MAGIC_BYTES.join(parts)
            parts = []
