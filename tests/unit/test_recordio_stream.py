"""RecordIO framing in plain Python, checked byte for byte against MXNet's own writer and reader.
Tier: fast; the round-trip property's full count runs in its slow twin (tests/tiers.py TWINS)."""

from __future__ import annotations

import io
import struct

import mxnet as mx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sagemaker_cv.contract.errors import ClientError
from sagemaker_cv.inputs.recordio import MAGIC, MAGIC_BYTES, iter_payloads
from sagemaker_cv.inputs.recordio import frame as encode
from tiers import TWINS, examples


def mxnet_bytes(tmp_path, payloads) -> bytes:
    path = tmp_path / "x.rec"
    writer = mx.recordio.MXRecordIO(str(path), "w")
    for p in payloads:
        writer.write(p)
    writer.close()
    return path.read_bytes()


def mxnet_read(tmp_path, data: bytes) -> list[bytes]:
    path = tmp_path / "y.rec"
    path.write_bytes(data)
    reader = mx.recordio.MXRecordIO(str(path), "r")
    out = []
    while (item := reader.read()) is not None:
        out.append(item)
    reader.close()
    return out


SPLIT = [
    b"",
    b"abc",
    MAGIC_BYTES,  # a record that is only the magic: two empty parts
    b"head" + MAGIC_BYTES + b"tail!",  # one split (cflag 1, 3)
    MAGIC_BYTES + b"1234" + MAGIC_BYTES + b"xy" + MAGIC_BYTES,  # first, middles and an empty last part
    b"ab" + MAGIC_BYTES + b"cd",  # magic at an unaligned offset: not split
    bytes(range(256)) * 3,
]


def test_encode_is_what_mxnet_writes(tmp_path):
    assert b"".join(encode(p) for p in SPLIT) == mxnet_bytes(tmp_path, SPLIT)
    # The aligned magic really was split: its record has more than one header.
    assert encode(SPLIT[3]).count(MAGIC_BYTES) == 2
    assert encode(SPLIT[5]).count(MAGIC_BYTES) == 2  # header + the untouched unaligned copy


def test_reading_mxnet_files_joins_split_records(tmp_path):
    data = mxnet_bytes(tmp_path, SPLIT)
    assert list(iter_payloads(io.BytesIO(data), "x")) == SPLIT


@pytest.mark.parametrize("tier", TWINS)
def test_round_trip_and_agreement_with_mxnet(tmp_path_factory, tier):
    @settings(max_examples=examples(60, tier), deadline=None)
    @given(
        st.lists(
            st.lists(st.one_of(st.binary(max_size=9), st.just(MAGIC_BYTES)), max_size=6).map(b"".join),
            max_size=8,
        )
    )
    def check(payloads):
        tmp = tmp_path_factory.mktemp("rt")
        data = b"".join(encode(p) for p in payloads)
        assert list(iter_payloads(io.BytesIO(data), "x")) == payloads
        assert mxnet_read(tmp, data) == payloads

    check()


class Trickle(io.RawIOBase):
    """A stream that returns at most 3 bytes per read, as a FIFO may."""

    def __init__(self, data):
        self.data, self.pos = data, 0

    def readable(self):
        return True

    def readinto(self, b):
        n = min(3, len(b), len(self.data) - self.pos)
        b[:n] = self.data[self.pos : self.pos + n]
        self.pos += n
        return n


def test_short_reads_are_assembled():
    data = b"".join(encode(p) for p in SPLIT)
    assert list(iter_payloads(Trickle(data), "x")) == SPLIT


def header(cflag, length):
    return struct.pack("<II", MAGIC, (cflag << 29) | length)


@pytest.mark.parametrize(
    "data, message",
    [
        (
            encode(b"good") + b"\x00" * 8,
            "record 2 at byte offset 12 is not RecordIO: expected the RecordIO magic number 0xced7230a, found 0x00000000",
        ),
        (
            encode(b"good") + MAGIC_BYTES,
            "record 2 at byte offset 12 is truncated: 4 stray byte(s) where a record header (8 bytes) should start",
        ),
        (
            header(0, 10) + b"short",
            "record 1 at byte offset 0 is truncated: its header announces 10 bytes but the file ends 5 bytes later",
        ),
        (
            header(1, 4) + b"abcd",
            "record 1 at byte offset 0 is truncated: cut off inside a record split into parts",
        ),
        (
            header(2, 4) + b"abcd",
            "record 1 at byte offset 0 is not RecordIO: continuation flag 2 where a new record should start",
        ),
        (
            header(1, 0) + header(0, 0),
            "record 1 at byte offset 8 is not RecordIO: continuation flag 0 where a continued record should start",
        ),
        (
            header(5, 0),
            "record 1 at byte offset 0 is not RecordIO: continuation flag 5 where a new record should start",
        ),
    ],
)
def test_broken_streams_name_record_offset_and_value(data, message):
    with pytest.raises(ClientError) as err:
        list(iter_payloads(io.BytesIO(data), "train_0"))
    assert len(err.value.problems) == 1
    assert err.value.problems[0].startswith("train_0: " + message)
