"""Pipe input mode: SageMaker streams a channel through one FIFO per pass over the data,
`/opt/ml/input/data/<channel>_<n>`, n counting from 0 in each container.

* A FIFO may appear late (SageMaker creates the next one after the previous was closed): we wait
  for it with a bounded, logged retry, and a FIFO that never appears is a named error.
* The writer may connect late and may stall: every read waits at most the same bound, so nothing
  hangs (a plain `open()` of a FIFO blocks until a writer comes, possibly forever).
* The stream is read as it arrives, never copied whole to disk or memory.
* `n` counts passes made by this process, not training epochs: a job restarted from a checkpoint
  at epoch 5 reads `<channel>_0` first again, because the new container's pipes start at 0.

On several hosts, FullyReplicated pipes carry the same records everywhere: each worker keeps
records `rank, rank + workers, ...` so every sample is seen once per epoch across the cluster.
ShardedByS3Key pipes carry different files on each host, read whole.
"""

from __future__ import annotations

import io
import math
import os
import select
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from sagemaker_cv.contract import logs
from sagemaker_cv.contract.environment import JobSettings
from sagemaker_cv.contract.errors import AlgorithmError, ClientError
from sagemaker_cv.inputs.recordio import iter_payloads

log = logs.get("pipe")

PIPE_TIMEOUT_ENV = "SAGEMAKER_CV_PIPE_TIMEOUT"
DEFAULT_TIMEOUT = 900.0  # SageMaker may take minutes to set up the next epoch's pipe


@dataclass(frozen=True)
class PipeSettings:
    #: seconds to wait for a FIFO to appear, for its writer to connect, and for data mid-stream
    timeout: float = DEFAULT_TIMEOUT
    #: seconds between two "still waiting" log lines
    log_every: float = 30.0
    read_size: int = 1 << 20

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> PipeSettings:
        timeout = JobSettings.from_env(environ).pipe_timeout
        return cls(timeout=timeout, log_every=min(30.0, timeout / 3))


def fifo_path(data_dir: Path, channel: str, index: int) -> Path:
    return data_dir / f"{channel}_{index}"


def wait_for_fifo(
    path: Path,
    settings: PipeSettings,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Return once `path` exists; retry with a growing interval, log every `log_every` seconds,
    and raise ClientError after `timeout` seconds."""
    start = clock()
    next_log = start + settings.log_every
    interval = 0.05
    while not path.exists():
        now = clock()
        if now - start >= settings.timeout:
            raise ClientError(
                f"{path}: the Pipe-mode FIFO did not appear within {settings.timeout:g} s; SageMaker creates it "
                f"for a channel whose TrainingInputMode is Pipe. Outside SageMaker, feed it (python -m "
                f"sagemaker_cv.tools.pipefeed) or use File mode; {PIPE_TIMEOUT_ENV} sets the wait"
            )
        if now >= next_log:
            log.info("Waiting for %s (Pipe mode): %.0f s so far", path, now - start)
            next_log = now + settings.log_every
        sleep(min(interval, max(0.0, settings.timeout - (now - start))))
        interval = min(interval * 2, 1.0)


class FifoReader(io.RawIOBase):
    """A FIFO (or a plain file) read with a bound on every wait.

    Opened non-blocking, so `open` returns at once; each read first polls for data or for the
    writer's close. On Linux a FIFO that no writer has opened yet polls as "nothing", not as
    end-of-stream, so a late writer is waited for and a writer that never comes times out."""

    def __init__(self, path: Path, settings: PipeSettings):
        super().__init__()
        self.path, self.settings = path, settings
        self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self.poller = select.poll()
        self.poller.register(self.fd, select.POLLIN | select.POLLHUP | select.POLLERR)
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        waited = 0.0
        step = min(self.settings.log_every, self.settings.timeout)
        while True:
            if self.poller.poll(step * 1000):
                try:
                    data = os.read(self.fd, min(len(buffer), self.settings.read_size))
                except BlockingIOError:  # woken without data (a spurious wake-up): poll again
                    continue
                buffer[: len(data)] = data
                self.bytes_read += len(data)
                return len(data)
            waited += step
            if waited >= self.settings.timeout:
                what = "no writer opened it" if self.bytes_read == 0 else "no data arrived"
                raise AlgorithmError(
                    f"{self.path}: {what} for {self.settings.timeout:g} s (after {self.bytes_read} bytes); "
                    f"the Pipe-mode stream stalled ({PIPE_TIMEOUT_ENV} sets the wait)"
                )
            log.info("Waiting for data on %s (Pipe mode): %.0f s so far", self.path, waited)

    def close(self) -> None:
        if not self.closed:
            os.close(self.fd)
        super().close()


@dataclass(frozen=True)
class PipeSample:
    number: int  # 1-based position in this pass's stream (every worker's samples counted)
    payloads: tuple[bytes, ...]  # one record, or one per attribute of an augmented manifest


class PipeEpoch:
    """One pass over a channel's FIFO: the samples of this worker's part, in stream order. A
    sample is `group` consecutive records (an augmented manifest's attributes; 1 otherwise).
    After it is exhausted, `total` is the number of samples in the whole stream."""

    def __init__(
        self, path: Path, settings: PipeSettings, parts: int = 1, part_index: int = 0, group: int = 1
    ):
        self.path, self.settings = path, settings
        self.parts, self.part_index, self.group = parts, part_index, group
        self.total: int | None = None

    def __iter__(self) -> Iterator[PipeSample]:
        wait_for_fifo(self.path, self.settings)
        log.info("Reading %s (Pipe mode)", self.path)
        with io.BufferedReader(FifoReader(self.path, self.settings), self.settings.read_size) as stream:
            count, pending = 0, []
            for payload in iter_payloads(stream, str(self.path)):
                pending.append(payload)
                if len(pending) < self.group:
                    continue
                count += 1
                if (count - 1) % self.parts == self.part_index:
                    yield PipeSample(count, tuple(pending))
                pending = []
            if pending:
                raise ClientError(
                    f"{self.path}: the stream ends inside sample {count + 1}: {len(pending)} of its {self.group} "
                    "records (one per AttributeNames entry) arrived"
                )
            self.total = count


class PipeChannel:
    """A channel in Pipe mode: `next_epoch()` opens the next FIFO, `<name>_0`, `<name>_1`, ..."""

    def __init__(
        self,
        name: str,
        data_dir: Path,
        settings: PipeSettings,
        parts: int = 1,
        part_index: int = 0,
        group: int = 1,
    ):
        self.name, self.data_dir, self.settings = name, data_dir, settings
        self.parts, self.part_index, self.group = parts, part_index, group
        self.passes = 0

    def next_epoch(self) -> PipeEpoch:
        path = fifo_path(self.data_dir, self.name, self.passes)
        self.passes += 1
        return PipeEpoch(path, self.settings, self.parts, self.part_index, self.group)


def batches_per_epoch(
    *,
    batch_size: int,
    workers: int,
    distribution: str,
    num_training_samples: int,
    stream_records: int | None = None,
) -> int | None:
    """How many batches every worker runs in one Pipe-mode epoch (dist_sync needs the same count
    everywhere), or None while that cannot be known yet.

    One worker: every record once, the last batch padded. FullyReplicated on several workers:
    every worker reads the whole stream, so at its end each knows the count and runs as many
    batches as the first worker, which holds the most records. ShardedByS3Key on several workers:
    the hosts' streams differ, so the count comes from num_training_samples (the documented
    total), as in File mode.
    """
    if workers > 1 and distribution == "ShardedByS3Key":
        return max(1, math.ceil(num_training_samples / (batch_size * workers)))
    if stream_records is None:
        return None
    mine = math.ceil(stream_records / workers)  # the first worker's share
    return max(1, math.ceil(mine / batch_size))
