"""Pipe mode on real FIFOs: a separate writer process (tools.pipefeed, SageMaker's side) feeds
`<channel>_<n>` epoch after epoch; the reader waits for each, frames the records and keeps its
worker's part. Waits are bounded: a FIFO that never comes, a writer that never connects and a
stream that stalls each end in a named error."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from sagemaker_cv.contract.errors import AlgorithmError, ClientError
from sagemaker_cv.inputs.pipe import PipeChannel, PipeSettings, batches_per_epoch, wait_for_fifo
from sagemaker_cv.inputs.recordio import MAGIC_BYTES
from sagemaker_cv.inputs.recordio import frame as encode

PAYLOADS = [f"record {i} ".encode() * (i % 5) + (MAGIC_BYTES * (i % 3)) for i in range(40)]


def stream_file(tmp_path, payloads, name="data.rec") -> Path:
    path = tmp_path / name
    path.write_bytes(b"".join(encode(p) for p in payloads))
    return path


FAST = PipeSettings(timeout=20.0, log_every=5.0)


@pytest.mark.parametrize("payloads", [PAYLOADS, [p.replace(MAGIC_BYTES, b"") for p in PAYLOADS]])
def test_several_epochs_from_a_writer_process(tmp_path, payloads, feeders):
    """Each epoch opens the next FIFO, which the writer creates only after the previous one closed,
    and yields every record whole (with and without split records)."""
    root = tmp_path / "ml"
    # Two files, concatenated as SageMaker streams the objects of a prefix.
    files = [stream_file(tmp_path, payloads[:25], "a.rec"), stream_file(tmp_path, payloads[25:], "b.rec")]
    proc = feeders(root, "train", 3, "--delay", 0.3, *files)
    channel = PipeChannel("train", root / "input" / "data", FAST)
    for n in range(3):
        epoch = channel.next_epoch()
        assert epoch.path.name == f"train_{n}"
        got = [s.payloads[0] for s in epoch]
        assert got == payloads and epoch.total == len(payloads)
    assert proc.wait(timeout=20) == 0, proc.stderr.read()


def test_workers_take_every_other_sample_and_manifest_groups(tmp_path, feeders):
    """Two workers on FullyReplicated copies of one stream: each sample once across both; an
    augmented manifest's records are grouped per sample before they are shared out."""
    roots = [tmp_path / "h1", tmp_path / "h2"]
    data = stream_file(tmp_path, PAYLOADS)
    procs = [feeders(r, "train", 1, data) for r in roots]
    seen = []
    for rank, root in enumerate(roots):
        epoch = PipeChannel(
            "train", root / "input" / "data", FAST, parts=2, part_index=rank, group=2
        ).next_epoch()
        samples = list(epoch)
        assert [s.number for s in samples] == list(range(rank + 1, 21, 2))
        assert all(s.payloads == tuple(PAYLOADS[2 * s.number - 2 : 2 * s.number]) for s in samples)
        seen += [s.number for s in samples]
    assert sorted(seen) == list(range(1, 21))
    for p in procs:
        assert p.wait(timeout=20) == 0


def test_a_sample_cut_short_names_it(tmp_path, feeders):
    root = tmp_path / "ml"
    proc = feeders(root, "train", 1, stream_file(tmp_path, PAYLOADS[:5]))
    epoch = PipeChannel("train", root / "input" / "data", FAST, group=2).next_epoch()
    with pytest.raises(ClientError, match=r"train_0: the stream ends inside sample 3: 1 of its 2 records"):
        list(epoch)
    proc.wait(timeout=20)


def test_a_fifo_that_never_appears_is_a_named_error_after_the_wait():
    clock = iter(range(0, 1000)).__next__
    slept = []
    with pytest.raises(ClientError, match=r"/nowhere/train_3: the Pipe-mode FIFO did not appear within 30 s"):
        wait_for_fifo(
            Path("/nowhere/train_3"), PipeSettings(timeout=30, log_every=10), clock=clock, sleep=slept.append
        )
    assert 0 < len(slept) < 40 and max(slept) <= 1.0  # bounded, growing retries


def test_a_late_fifo_is_waited_for_and_logged(tmp_path, caplog):
    path = tmp_path / "train_0"
    timer = threading.Timer(0.6, lambda: os.mkfifo(path))
    timer.start()
    started = time.monotonic()
    with caplog.at_level("INFO", logger="sagemaker_cv"):
        wait_for_fifo(path, PipeSettings(timeout=10, log_every=0.2))
    assert 0.5 < time.monotonic() - started < 5
    assert any("Waiting for" in r.message and "train_0" in r.message for r in caplog.records)


def test_a_writer_that_never_connects_or_stalls_ends_the_read(tmp_path):
    root = tmp_path / "ml"
    data_dir = root / "input" / "data"
    data_dir.mkdir(parents=True)
    os.mkfifo(data_dir / "train_0")  # created, but nobody ever writes
    settings = PipeSettings(timeout=0.6, log_every=0.3)
    started = time.monotonic()
    with pytest.raises(AlgorithmError, match=r"train_0: no writer opened it for 0.6 s \(after 0 bytes\)"):
        list(PipeChannel("train", data_dir, settings).next_epoch())
    assert time.monotonic() - started < 5

    # A writer that sends one record and then holds the pipe open without writing.
    os.mkfifo(data_dir / "train_1")

    def stall():
        with open(data_dir / "train_1", "wb") as f:
            f.write(encode(b"one"))
            f.flush()
            time.sleep(1.2)

    writer = threading.Thread(target=stall)
    writer.start()
    channel = PipeChannel("train", data_dir, settings)
    channel.passes = 1
    with pytest.raises(AlgorithmError, match=r"train_1: no data arrived for 0.6 s \(after 12 bytes\)"):
        list(channel.next_epoch())
    writer.join()


def test_timeout_setting_is_checked():
    assert PipeSettings.from_env({"SAGEMAKER_CV_PIPE_TIMEOUT": "12"}).timeout == 12
    with pytest.raises(ClientError, match="SAGEMAKER_CV_PIPE_TIMEOUT='soon'"):
        PipeSettings.from_env({"SAGEMAKER_CV_PIPE_TIMEOUT": "soon"})


@pytest.mark.parametrize(
    "records, workers, expected",
    [
        (60, 1, 8),  # 60 samples, batches of 8: the last one padded
        (64, 1, 8),
        (17, 2, 2),  # ranks hold 9 and 8: both run the first rank's 2 batches
        (16, 2, 1),
        (33, 4, 2),  # 9, 8, 8, 8 samples
    ],
)
def test_equal_batch_counts_for_fully_replicated_pipes(records, workers, expected):
    assert (
        batches_per_epoch(
            batch_size=8,
            workers=workers,
            distribution="FullyReplicated",
            num_training_samples=1,
            stream_records=records,
        )
        == expected
    )
    # Unknown until the stream ends.
    assert (
        batches_per_epoch(
            batch_size=8, workers=workers, distribution="FullyReplicated", num_training_samples=1
        )
        is None
    )


def test_sharded_pipes_count_batches_from_num_training_samples():
    kwargs = dict(batch_size=8, distribution="ShardedByS3Key", num_training_samples=100)
    assert batches_per_epoch(workers=2, **kwargs) == 7  # known before reading: every host agrees
    assert batches_per_epoch(workers=1, stream_records=30, **kwargs) == 4  # one host reads what it gets
