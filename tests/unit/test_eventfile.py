"""Tier: fast. The hand-written TensorBoard event files, read back by TensorBoard's own reader."""

from __future__ import annotations

import struct

import pytest

from sagemaker_cv.training import eventfile
from sagemaker_cv.training.eventfile import EventWriter

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


def read(directory):
    accumulator = event_accumulator.EventAccumulator(str(directory))
    accumulator.Reload()
    return {t: [(e.step, e.value) for e in accumulator.Scalars(t)] for t in accumulator.Tags()["scalars"]}


def test_crc32c_matches_the_published_check_values():
    # RFC 3720 (iSCSI) B.4 and the common CRC catalogue check value of "123456789"
    assert eventfile.crc32c(b"123456789") == 0xE3069283
    assert eventfile.crc32c(bytes(32)) == 0x8A9136AA
    assert eventfile.crc32c(bytes([0xFF] * 32)) == 0x62A8AB43


def test_a_record_is_framed_as_tfrecord():
    data = b"hello"
    framed = eventfile.record(data)
    assert struct.unpack("<Q", framed[:8])[0] == 5
    assert struct.unpack("<I", framed[8:12])[0] == eventfile.masked_crc(framed[:8])
    assert framed[12:17] == data
    assert struct.unpack("<I", framed[17:])[0] == eventfile.masked_crc(data)


def test_tensorboard_reads_back_every_scalar(tmp_path):
    writer = EventWriter(tmp_path)
    writer.scalars(1, [("train/loss", 2.5), ("validation/mIOU", 0.125)])
    writer.scalars(2, [("train/loss", 1.25)])
    writer.scalars(300_000, [("train/loss", -3e-7)])  # a step needing a multi-byte varint
    writer.close()
    assert read(tmp_path) == {
        "train/loss": [(1, 2.5), (2, 1.25), (300_000, pytest.approx(-3e-7))],
        "validation/mIOU": [(1, 0.125)],
    }


def test_a_restarted_run_replaces_what_the_earlier_one_wrote_from_its_first_step(tmp_path):
    clock = iter(range(1_000, 2_000, 7))  # distinct file names, in order
    first = EventWriter(tmp_path, clock=lambda: next(clock))
    for step in (1, 2, 3, 4):
        first.scalars(step, [("loss", float(step))])
    first.close()  # killed after step 4; its checkpoint was taken at step 2
    second = EventWriter(tmp_path, first_step=3, clock=lambda: next(clock))
    for step in (3, 4, 5):
        second.scalars(step, [("loss", 10.0 * step)])
    second.close()
    assert len(list(tmp_path.iterdir())) == 2
    assert read(tmp_path) == {"loss": [(1, 1.0), (2, 2.0), (3, 30.0), (4, 40.0), (5, 50.0)]}


def test_a_fresh_run_hides_an_earlier_run_in_the_same_directory(tmp_path):
    clock = iter(range(1_000, 2_000, 7))
    old = EventWriter(tmp_path, clock=lambda: next(clock))
    old.scalars(5, [("loss", 1.0)])
    old.close()
    new = EventWriter(tmp_path, clock=lambda: next(clock))
    new.scalars(1, [("loss", 2.0)])
    new.close()
    assert read(tmp_path) == {"loss": [(1, 2.0)]}
