"""Streamed records cut into small RecordIO chunk files, so MXNet's file-based iterators
(ImageRecordIter, ImageDetRecordIter) can read a Pipe-mode stream with the same decoding and
augmentation as File mode, while memory and disk stay bounded by a few chunks whatever the
dataset's size.

A background thread reads the stream (the FIFO and whatever converts its records) and writes
chunk files at most `ahead` chunks in front of the consumer, so reading the pipe overlaps
training. Records are shuffled within each chunk (a pipe arrives in S3 order: im2rec writes
.rec files sorted by class). Every chunk holds a multiple of the batch size, except that the
last one is padded to a whole batch by repeating its own first records (MXNet's iterators refuse
files smaller than a batch, and pad the last batch the same way); `pad` says how many.
"""

from __future__ import annotations

import queue
import random
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from sagemaker_cv.inputs.recordio import frame as encode

DEFAULT_CHUNK_RECORDS = 1024
DEFAULT_CHUNK_BYTES = 64 << 20


@dataclass
class Chunk:
    path: Path
    numbers: list[int]  # stream record number of each record in the file, in file order
    pad: int = 0  # records at the end that repeat earlier ones (the last chunk only)

    @property
    def records(self) -> int:
        """Real records (without the pad)."""
        return len(self.numbers) - self.pad

    def release(self) -> None:
        self.path.unlink(missing_ok=True)


def chunk_size(batch_size: int, records: int = DEFAULT_CHUNK_RECORDS) -> int:
    """Records per chunk: at least two batches, a whole number of them."""
    return max(2, -(-records // batch_size)) * batch_size


class _Failed:
    def __init__(self, exc: BaseException):
        self.exc = exc


_END = object()


class Spooler:
    """Iterate to get the chunks of one pass over `records` ((number, payload) pairs).

    `close()` (also on leaving a `with` block) stops the reader thread and deletes the chunk files
    left; the consumer deletes each chunk it finished with `Chunk.release()`."""

    def __init__(
        self,
        records: Iterable[tuple[int, bytes]],
        directory: Path,
        *,
        batch_size: int,
        chunk_records: int | None = None,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        seed: int | None = None,
        ahead: int = 2,
        name: str = "chunk",
    ):
        self.records, self.directory, self.batch_size = records, directory, batch_size
        self.chunk_records = chunk_records or chunk_size(batch_size)
        if self.chunk_records % batch_size:
            raise ValueError(
                f"chunk_records={self.chunk_records} is not a multiple of batch_size={batch_size}"
            )
        self.chunk_bytes, self.name = chunk_bytes, name
        self.rng = random.Random(seed) if seed is not None else None
        self.queue: queue.Queue = queue.Queue(maxsize=max(1, ahead))
        self.stopping = threading.Event()
        self.written: list[Chunk] = []
        self.thread: threading.Thread | None = None

    # ---- the reader thread ---------------------------------------------------------------------

    def _put(self, item) -> bool:
        while not self.stopping.is_set():
            try:
                self.queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _write(self, index: int, batch: list[tuple[int, bytes]], pad: int) -> Chunk:
        if self.rng is not None:
            real = batch[: len(batch) - pad]
            self.rng.shuffle(real)
            batch = real + real[:pad] if pad else real
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{self.name}-{index:05d}.rec"
        with open(path, "wb") as f:
            for _, payload in batch:
                f.write(encode(payload))
        chunk = Chunk(path, [n for n, _ in batch], pad)
        self.written.append(chunk)
        return chunk

    def _run(self) -> None:
        try:
            pending: list[tuple[int, bytes]] = []
            size, index = 0, 0
            for number, payload in self.records:
                if self.stopping.is_set():
                    return
                pending.append((number, payload))
                size += len(payload)
                full = len(pending) >= self.chunk_records or size >= self.chunk_bytes
                if full and len(pending) % self.batch_size == 0:
                    if not self._put(self._write(index, pending, 0)):
                        return
                    pending, size, index = [], 0, index + 1
            if pending:
                pad = -len(pending) % self.batch_size
                padded = pending + [pending[i % len(pending)] for i in range(pad)]
                if not self._put(self._write(index, padded, pad)):
                    return
            self._put(_END)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which raises it
            self._put(_Failed(exc))

    # ---- the consumer --------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Chunk]:
        if self.thread is not None:
            raise RuntimeError("a Spooler makes one pass; create another for the next epoch")
        self.thread = threading.Thread(target=self._run, name=f"spool-{self.name}", daemon=True)
        self.thread.start()
        while True:
            item = self.queue.get()
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.exc
            yield item

    def close(self) -> None:
        self.stopping.set()
        if self.thread is not None:
            # The reader may sit in a FIFO read; it notices `stopping` at its next record. As a
            # daemon thread it cannot keep the process alive.
            self.thread.join(timeout=1.0)
        for chunk in self.written:
            chunk.release()

    def __enter__(self) -> Spooler:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
