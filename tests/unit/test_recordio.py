"""RecordIO framing read in Python: records with offsets, several files as one dataset, and
damaged files described as a person would (file, record, byte offset, what was expected)."""

from __future__ import annotations

import io
import os
import struct

import mxnet as mx
import pytest

from sagemaker_cv.contract.errors import ClientError
from sagemaker_cv.inputs import recordio

MAGIC = struct.pack("<I", 0xCED7230A)


def write_rec(path, payloads):
    writer = mx.recordio.MXRecordIO(str(path), "w")
    for payload in payloads:
        writer.write(payload)
    writer.close()
    return path


def payloads(n, start=0):
    return [f"record {i} ".encode() * (i % 5 + 1) for i in range(start, start + n)]


def test_records_match_mxnet_including_payloads_that_contain_the_magic(tmp_path):
    # dmlc's writer splits a payload at every aligned copy of the magic number (multi-part records).
    tricky = [b"abcd" + MAGIC + b"efgh", MAGIC, MAGIC * 3 + b"x", b"", b"12345"]
    path = write_rec(tmp_path / "a.rec", tricky + payloads(5))
    records = list(recordio.read_records(path, "train/a.rec"))
    assert [r.payload for r in records] == tricky + payloads(5)
    assert [r.number for r in records] == list(range(1, 11))
    # Offsets are where each record's first header starts (what an .idx holds).
    data = path.read_bytes()
    for record in records:
        assert data[record.offset : record.offset + 4] == MAGIC
        assert record.offset + record.size <= len(data) and record.size % 4 == 0
    assert records[-1].offset + records[-1].size == len(data)


def test_a_stream_reads_like_a_file(tmp_path):
    """Pipe mode hands over the concatenation of every object: one stream of records."""
    a = write_rec(tmp_path / "a.rec", payloads(3)).read_bytes()
    b = write_rec(tmp_path / "b.rec", payloads(2, 3)).read_bytes()
    records = list(recordio.iter_records(io.BytesIO(a + b), "train (pipe)"))
    assert [r.payload for r in records] == payloads(5)
    assert records[3].offset == len(a)


def test_random_bytes_name_file_record_offset_and_the_fix(tmp_path):
    good = write_rec(tmp_path / "good.rec", payloads(4)).read_bytes()
    path = tmp_path / "part-1.rec"
    path.write_bytes(good + os.urandom(64).replace(MAGIC, b"\0\0\0\0"))
    with pytest.raises(ClientError) as info:
        list(recordio.read_records(path, "train/part-1.rec"))
    text = info.value.reason()
    assert text.startswith(
        f"ClientError: train/part-1.rec: record 5 at byte offset {len(good)} is not RecordIO: "
        "expected the RecordIO magic number 0xced7230a, found 0x"
    )
    assert "4 record(s) before it are intact" in text
    assert "re-create the file with MXNet's im2rec" in text
    assert "Traceback" not in text and "dmlc" not in text


def test_truncated_file_says_how_much_is_missing(tmp_path):
    good = write_rec(tmp_path / "good.rec", payloads(3))
    data = good.read_bytes()
    cut = data[:-5]
    (tmp_path / "cut.rec").write_bytes(cut)
    last = list(recordio.read_records(good, "x"))[-1]
    with pytest.raises(ClientError) as info:
        list(recordio.read_records(tmp_path / "cut.rec", "train/cut.rec"))
    assert info.value.problems == [
        f"train/cut.rec: record 3 at byte offset {last.offset} is truncated: its header announces "
        f"{len(last.payload)} bytes but the file ends {len(cut) - last.offset - 8} bytes later; "
        "2 record(s) before it are intact; upload the whole file again or re-create it with MXNet's im2rec "
        "(python -m mxnet.tools.im2rec)"
    ]
    (tmp_path / "stub.rec").write_bytes(data + b"\x0a\x23")
    with pytest.raises(ClientError, match=r"record 4 at byte offset \d+ is truncated: 2 stray byte"):
        list(recordio.read_records(tmp_path / "stub.rec", "train/stub.rec"))


def test_empty_file_has_no_records(tmp_path):
    (tmp_path / "e.rec").write_bytes(b"")
    assert list(recordio.read_records(tmp_path / "e.rec", "e")) == []


def test_find_shards_is_sorted_confined_and_refuses_what_is_not_a_file(tmp_path):
    channel = tmp_path / "train"
    (channel / "sub").mkdir(parents=True)
    for name in ("part-1.rec", "part-0.rec", "sub/part-2.rec", "notes.txt"):
        (channel / name).write_bytes(b"")
    shards = recordio.find_shards(channel, "train")
    assert [s.name for s in shards] == ["train/part-0.rec", "train/part-1.rec", "train/sub/part-2.rec"]

    outside = tmp_path / "secret.rec"
    outside.write_bytes(b"")
    (channel / "link.rec").symlink_to(outside)
    os.mkfifo(channel / "pipe.rec")
    with pytest.raises(ClientError) as info:
        recordio.find_shards(channel, "train")
    assert info.value.problems == [
        "train/link.rec: is a symlink to a file outside the train channel; copy the file into the channel",
        "train/pipe.rec: is a FIFO (named pipe); File-mode input must be regular files",
    ]


def test_index_over_several_files_reads_them_as_one_dataset(tmp_path):
    a = write_rec(tmp_path / "a.rec", payloads(4))
    b = write_rec(tmp_path / "b.rec", payloads(3, 4))
    idx = tmp_path / "all.idx"
    assert recordio.write_index(idx, [a, b]) == 7
    offsets = [int(line.split("\t")[1]) for line in idx.read_text().splitlines()]
    (tmp_path / "joined.rec").write_bytes(a.read_bytes() + b.read_bytes())
    reader = mx.recordio.MXIndexedRecordIO(str(idx), str(tmp_path / "joined.rec"), "r")
    assert [reader.read_idx(i) for i in range(7)] == payloads(7)
    assert offsets[4] == a.stat().st_size


def test_copy_drops_records_and_keeps_the_framing(tmp_path):
    tricky = [MAGIC + b"abcd", b"keep", b"drop", MAGIC]
    src = write_rec(tmp_path / "s.rec", tricky)
    dst = tmp_path / "d.rec"
    recordio.copy_records(src, dst, drop={3})
    reader = mx.recordio.MXRecordIO(str(dst), "r")
    got = []
    while (item := reader.read()) is not None:
        got.append(item)
    assert got == [MAGIC + b"abcd", b"keep", MAGIC]


def test_frames_are_byte_for_byte_what_mxnet_writes(tmp_path):
    tricky = [b"abcd" + MAGIC + b"efgh", MAGIC, MAGIC * 3 + b"x", b"", b"12345", b"ab" + MAGIC + b"cd"]
    reference = write_rec(tmp_path / "mx.rec", tricky + payloads(3)).read_bytes()
    ours = tmp_path / "ours.rec"
    writer = recordio.RecordWriter(ours, tmp_path / "ours.idx")
    for payload in tricky + payloads(3):
        writer.write(payload)
    writer.close()
    assert ours.read_bytes() == reference
    offsets = [int(line.split("\t")[1]) for line in (tmp_path / "ours.idx").read_text().splitlines()]
    assert offsets == [r.offset for r in recordio.read_records(ours, "ours")]
