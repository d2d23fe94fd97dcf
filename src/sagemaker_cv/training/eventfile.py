"""TensorBoard scalar event files, written without TensorFlow, tensorboardX or protobuf.

An event file is a sequence of TFRecords (length, masked CRC-32C of the length, data, masked
CRC-32C of the data), each holding one `Event` protocol buffer: the first names the format
(`file_version: "brain.Event:2"`), the others carry a summary of scalars at a step, or a
`SessionLog` START. Only these few fields are written, so they are encoded here by hand (field
numbers from tensorboard/compat/proto/event.proto and summary.proto); the tests read the files
back with TensorBoard's own reader.

A restarted job writes START at the first step it will run: TensorBoard then drops the events of
earlier runs from that step on (the epochs a killed job logged after its last checkpoint), so the
curves show each step once.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from collections.abc import Iterable
from pathlib import Path

FILE_VERSION = "brain.Event:2"
_SESSION_START = 1


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), the checksum TFRecord uses; pure Python (events are a few dozen bytes)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def record(data: bytes) -> bytes:
    """One TFRecord around `data`."""
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", masked_crc(length)) + data + struct.pack("<I", masked_crc(data))


# ---- the protocol buffer fields, encoded by hand ---------------------------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        bits, value = value & 0x7F, value >> 7
        out.append(bits | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _key(field: int, wire_type: int) -> bytes:
    return _varint(field << 3 | wire_type)


def _bytes_field(field: int, payload: bytes) -> bytes:
    return _key(field, 2) + _varint(len(payload)) + payload


def event(
    wall_time: float,
    step: int = 0,
    *,
    file_version: str | None = None,
    summary: bytes = b"",
    session_start: bool = False,
) -> bytes:
    """An `Event`: wall_time (1, double), step (2, int64), file_version (3), summary (5),
    session_log (7: status START = 1)."""
    out = _key(1, 1) + struct.pack("<d", wall_time)
    if step:
        out += _key(2, 0) + _varint(step)
    if file_version is not None:
        out += _bytes_field(3, file_version.encode())
    if summary:
        out += _bytes_field(5, summary)
    if session_start:
        out += _bytes_field(7, _key(1, 0) + _varint(_SESSION_START))
    return out


def scalars_summary(values: Iterable[tuple[str, float]]) -> bytes:
    """A `Summary` of `Value`s, each a tag (1) and a simple_value (2, float)."""
    return b"".join(
        _bytes_field(1, _bytes_field(1, tag.encode()) + _key(2, 5) + struct.pack("<f", float(value)))
        for tag, value in values
    )


class EventWriter:
    """One event file in `directory`, appended record by record. Every record is one `write`
    followed by a flush, so a killed job leaves whole records (SageMaker uploads the directory
    while the job runs)."""

    def __init__(self, directory: Path, first_step: int = 0, clock=time.time):
        self.clock = clock
        directory.mkdir(parents=True, exist_ok=True)
        now = clock()
        self.path = directory / f"events.out.tfevents.{int(now):010d}.{socket.gethostname()}.{os.getpid()}"
        self._file = open(self.path, "ab")  # noqa: SIM115 - held open while the job runs
        self._write(event(now, file_version=FILE_VERSION))
        # The run starts here: TensorBoard drops what earlier runs wrote at this step and later.
        self._write(event(now, first_step, session_start=True))

    def scalars(self, step: int, values: Iterable[tuple[str, float]]) -> None:
        summary = scalars_summary(values)
        if summary:
            self._write(event(self.clock(), step, summary=summary))

    def _write(self, data: bytes) -> None:
        self._file.write(record(data))
        self._file.flush()

    def close(self) -> None:
        self._file.close()
