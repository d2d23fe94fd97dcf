"""Chunk files cut from a stream: whole batches, a padded tail, bounded read-ahead, errors passed on."""

from __future__ import annotations

import io
import time

import pytest

from sagemaker_cv.inputs.recordio import iter_payloads
from sagemaker_cv.inputs.spool import Spooler, chunk_size


def records(n):
    return [(i + 1, f"payload {i + 1}".encode()) for i in range(n)]


def read(chunk):
    return list(iter_payloads(io.BytesIO(chunk.path.read_bytes()), chunk.path.name))


def test_chunks_hold_whole_batches_and_the_tail_is_padded(tmp_path):
    with Spooler(records(21), tmp_path, batch_size=4, chunk_records=8) as spool:
        chunks = []
        for chunk in spool:
            chunks.append((chunk.numbers, chunk.pad, read(chunk)))
            chunk.release()
    assert [len(n) for n, _, _ in chunks] == [8, 8, 8]
    assert [pad for _, pad, _ in chunks] == [0, 0, 3]
    numbers = [n for nums, _, _ in chunks for n in nums]
    assert numbers[:21] == list(range(1, 22)) and numbers[21:] == [17, 18, 19]  # the tail wraps
    for nums, _, payloads in chunks:
        assert payloads == [f"payload {n}".encode() for n in nums]
    assert list(tmp_path.iterdir()) == []


def test_shuffled_within_each_chunk_by_seed(tmp_path):
    def order(seed):
        with Spooler(records(16), tmp_path / str(seed), batch_size=4, chunk_records=8, seed=seed) as spool:
            return [c.numbers for c in spool]

    first = order(1)
    assert first == order(1) and first != order(2)
    assert sorted(first[0]) == list(range(1, 9)) and sorted(first[1]) == list(range(9, 17))


def test_reader_errors_reach_the_consumer(tmp_path):
    def broken():
        yield from records(9)
        raise ValueError("bad record 10")

    with Spooler(broken(), tmp_path, batch_size=4, chunk_records=8) as spool:
        it = iter(spool)
        assert len(next(it).numbers) == 8
        with pytest.raises(ValueError, match="bad record 10"):
            next(it)


def test_read_ahead_is_bounded_and_close_stops_the_reader(tmp_path):
    pulled = []

    def endless():
        n = 0
        while True:
            n += 1
            pulled.append(n)
            yield n, b"x" * 10

    spool = Spooler(endless(), tmp_path, batch_size=2, chunk_records=4, ahead=2)
    first = next(iter(spool))
    time.sleep(0.3)
    # One chunk taken, two waiting in the queue, one being filled: never the whole stream.
    assert len(pulled) <= 4 * 4 + 1
    spool.close()
    assert not spool.thread.is_alive() and not first.path.exists()


def test_chunk_size_is_whole_batches():
    assert chunk_size(32) == 1024 and chunk_size(100) == 1100 and chunk_size(1000) == 2000
