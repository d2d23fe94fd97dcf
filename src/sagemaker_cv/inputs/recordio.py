"""RecordIO files as MXNet writes them (im2rec, MXRecordIO): reading records with their byte
offsets, writing indexes and filtered copies. Shared by every algorithm that takes RecordIO; what a
record's label means is the algorithm's business."""

from __future__ import annotations

import ctypes
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mxnet as mx

from sagemaker_cv.contract.errors import ClientError

MAX_LISTED = 12  # problems listed by name before "and N more"


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

    def as_list(self) -> list[str]:
        return self.items + ([f"... and {self.extra} more problem(s) of the same kind"] if self.extra else [])


@dataclass(frozen=True)
class Record:
    number: int  # 1-based, for messages
    offset: int  # byte offset of the record in its file (an .idx entry)
    payload: bytes


def _reader_tell(reader: mx.recordio.MXRecordIO) -> int:
    """Byte offset of the next record (MXRecordIO exposes this for writers only)."""
    pos = ctypes.c_size_t()
    mx.base.check_call(mx.base._LIB.MXRecordIOReaderTell(reader.handle, ctypes.byref(pos)))
    return pos.value


def read_records(path: Path, name: str) -> Iterator[Record]:
    """Every record of a .rec file in order; `name` (e.g. `train/data.rec`) names it in errors."""
    reader = mx.recordio.MXRecordIO(str(path), "r")
    number = 0
    try:
        while True:
            offset = _reader_tell(reader)
            try:
                item = reader.read()
            except Exception as exc:  # noqa: BLE001 - MXNet raises MXNetError on broken framing
                raise ClientError(
                    f"{name}: unreadable RecordIO after record {number} ({exc}); make the file with MXNet's im2rec"
                ) from None
            if item is None:
                return
            number += 1
            yield Record(number, offset, item)
    finally:
        reader.close()


@dataclass(frozen=True)
class ImageRecord:
    record: Record
    where: str  # "<name> record N (id X)", for messages
    header: mx.recordio.IRHeader
    image: bytes


def image_records(path: Path, name: str, problems: Problems) -> Iterator[ImageRecord]:
    """Every record of a .rec unpacked as an image record (im2rec's layout). A record too short to
    hold the header goes to `problems` and is skipped."""
    for record in read_records(path, name):
        where = f"{name} record {record.number}"
        try:
            header, image = mx.recordio.unpack(record.payload)
        except struct.error:
            problems.add(f"{where}: too short to hold an image record header; make the file with im2rec")
            continue
        yield ImageRecord(record, f"{where} (id {header.id})", header, image)


def write_index(idx: Path, offsets: list[int]) -> None:
    """An .idx for records at these offsets, numbered from 0 in this order."""
    idx.write_text("".join(f"{i}\t{offset}\n" for i, offset in enumerate(offsets)))


def copy_records(src: Path, dst: Path, idx: Path, numbers: set[int]) -> None:
    """Copy the records with these 1-based numbers into an indexed file."""
    writer = mx.recordio.MXIndexedRecordIO(str(idx), str(dst), "w")
    try:
        kept = 0
        for record in read_records(src, src.name):
            if record.number in numbers:
                writer.write_idx(kept, record.payload)
                kept += 1
    finally:
        writer.close()
