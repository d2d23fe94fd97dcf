"""A Pipe-mode channel as batches of a file-based iterator, epoch after epoch: the part every
algorithm shares. An algorithm subclasses `RecordStream` with three things: how a streamed sample
becomes the record its File-mode reader takes (`convert`, or None to skip a sample it can tell is
unusable, such as an undecodable image), how that reader iterates a chunk file (`iterate`), and
optionally how to go on when the reader fails inside a chunk (`recover`).

Per epoch: the next FIFO (`inputs.pipe`), its samples converted and cut into chunk files
(`inputs.spool`), each chunk iterated in turn. Training yields the same number of batches on every
worker (`pipe.batches_per_epoch`): a worker with fewer records repeats its last chunk, and with
ShardedByS3Key pipes a worker stops at the count num_training_samples gives.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from sagemaker_cv.contract import logs
from sagemaker_cv.contract.config import Channel, data_shard
from sagemaker_cv.contract.content_types import RECORDIO
from sagemaker_cv.contract.errors import ClientError
from sagemaker_cv.inputs import manifest
from sagemaker_cv.inputs.pipe import PipeChannel, PipeEpoch, PipeSample, PipeSettings, batches_per_epoch
from sagemaker_cv.inputs.recordio import frame as encode
from sagemaker_cv.inputs.recordio import iter_payloads
from sagemaker_cv.inputs.spool import Chunk, Spooler

log = logs.get("pipe")

SPLITS = ("train", "validation")


def pipe_splits(
    channels: dict[str, Channel], default_attributes: tuple[str, ...], *, file_mode_formats: str
) -> tuple[dict[str, tuple[Channel, manifest.ManifestLayout | None]], list[str]]:
    """The splits (train, validation) read in Pipe mode, each with its augmented-manifest layout
    (None: im2rec records), and every problem with how the channels ask for it.
    `file_mode_formats` completes the content-type message: "(what RecordIO holds); what needs File mode"."""
    splits: dict[str, tuple[Channel, manifest.ManifestLayout | None]] = {}
    problems: list[str] = []
    for name, ch in channels.items():
        if ch.input_mode != "Pipe":
            if (ch.record_wrapper or "None") == "RecordIO" and name in SPLITS:
                problems.append(
                    f"channel {name!r} RecordWrapperType=RecordIO (an augmented manifest) in {ch.input_mode} "
                    "mode: SageMaker streams augmented manifests in Pipe mode only; set TrainingInputMode to Pipe"
                )
        elif name not in SPLITS:
            problems.append(
                f"channel {name!r}: Pipe input mode is for the RecordIO channels train and validation; use File"
            )
        elif ch.media_type not in (None, RECORDIO):
            problems.append(
                f"channel {name!r} ContentType={ch.content_type!r} in Pipe mode: expected {RECORDIO} "
                + file_mode_formats
            )
        else:
            try:
                splits[name] = (ch, manifest.layout_for(ch, default_attributes))
            except ClientError as exc:
                problems.extend(exc.problems)
    return splits, problems


def read_chunk(chunk: Chunk, start: int = 0) -> list[tuple[int, bytes]]:
    """(sample number, record) of a chunk's real records from position `start` on."""
    with open(chunk.path, "rb") as f:
        payloads = list(iter_payloads(f, str(chunk.path)))[start : chunk.records]
    return list(zip(chunk.numbers[start:], payloads))


def rewrite_chunk(chunk: Chunk, keep: list[tuple[int, bytes]], batch_size: int) -> None:
    """Replace a chunk's records with `keep`, padded to whole batches as the spooler pads."""
    pad = -len(keep) % batch_size if keep else 0
    keep = keep + [keep[i % len(keep)] for i in range(pad)]
    tmp = chunk.path.with_suffix(".new")
    with open(tmp, "wb") as f:
        for _, payload in keep:
            f.write(encode(payload))
    tmp.replace(chunk.path)
    chunk.numbers, chunk.pad = [n for n, _ in keep], pad


class RecordStream:
    #: the reader's errors that `recover` may handle (e.g. MXNet's, for an undecodable image)
    recoverable: tuple[type[BaseException], ...] = ()

    def __init__(
        self,
        channel: str,
        data_dir: Path,
        settings: PipeSettings,
        *,
        batch_size: int,
        scratch: Path,
        distribution: str = "FullyReplicated",
        workers: int = 1,
        rank: int = 0,
        group: int = 1,
        num_training_samples: int = 0,
    ):
        self.batch_size, self.scratch, self.distribution = batch_size, scratch, distribution
        self.workers, self.num_training_samples = workers, num_training_samples
        parts, part = data_shard(distribution, workers, rank)
        self.channel = PipeChannel(channel, data_dir, settings, parts, part, group)
        self.warned_count = False
        self.skipped: list[str] = []  # the samples left out as undecodable, named for the log

    # ---- what an algorithm provides -----------------------------------------------------------

    def convert(self, sample: PipeSample, source: str) -> bytes | None:
        """The record the File-mode reader takes, from one streamed sample; ClientError naming
        the sample when it is malformed; None to leave out a sample File mode would skip (the
        subclass reports it)."""
        raise NotImplementedError

    def iterate(self, chunk: Chunk, *, train: bool, seed: int) -> Iterable:
        """Batches over a chunk file (`chunk.path`, RecordIO) in its record order."""
        raise NotImplementedError

    def recover(self, chunk: Chunk, start: int, source: str, error: BaseException) -> None:
        """The reader failed inside `chunk` after `start` records were trained on: rewrite the
        chunk (`rewrite_chunk`) without what it cannot read, or raise."""
        raise error

    # ---- shared --------------------------------------------------------------------------------

    def _records(self, epoch: PipeEpoch) -> Iterator[tuple[int, bytes]]:
        for sample in epoch:
            record = self.convert(sample, epoch.path.name)
            if record is not None:
                yield sample.number, record

    def _chunk_batches(
        self, chunk: Chunk, seed: int, train: bool, source: str
    ) -> Iterator[tuple[object, int]]:
        """(batch, real samples in it) over one chunk; after a recovery the rewritten chunk goes on
        where the failure was (and a later pass over it does not meet the failure again)."""
        while chunk.numbers:
            done = 0
            try:
                for batch in self.iterate(chunk, train=train, seed=seed):
                    yield batch, max(0, min(self.batch_size, chunk.records - done))
                    done += self.batch_size
                return
            except self.recoverable as exc:
                self.recover(chunk, done, source, exc)

    def epoch(self, seed: int, train: bool = True) -> Iterator[tuple[object, int]]:
        """One epoch from the next FIFO: (batch, real samples) pairs. The spooler shuffles
        training records within each chunk (seeded); validation keeps the stream's order."""
        self.skipped = []  # the notes after an epoch name what that epoch skipped
        epoch = self.channel.next_epoch()
        source = epoch.path.name
        common = dict(batch_size=self.batch_size, workers=self.workers, distribution=self.distribution)
        fixed = batches_per_epoch(num_training_samples=self.num_training_samples, **common) if train else None
        produced, last = 0, None
        with Spooler(
            self._records(epoch),
            self.scratch / f"{source}-chunks",
            batch_size=self.batch_size,
            seed=seed if train else None,
            name=source,
        ) as spool:
            for chunk in spool:
                for item in self._chunk_batches(chunk, seed + produced, train, source):
                    yield item
                    produced += 1
                    if fixed is not None and produced >= fixed:
                        log.info(
                            "%s: stopped after %d batches, the count every host runs (from num_training_samples); "
                            "the rest of this host's stream is not read this epoch",
                            source,
                            produced,
                        )
                        return
                if chunk.numbers:  # the last chunk with records is kept to repeat (below)
                    if last is not None:
                        last.release()
                    last = chunk
            self._check_count(epoch, train)
            if train and last is None and self.workers == 1:
                raise ClientError(f"{source}: none of its {epoch.total} sample(s) is usable (see the log)")
            if not train or (self.workers == 1 and fixed is None):
                return
            target = fixed or batches_per_epoch(
                num_training_samples=self.num_training_samples, stream_records=epoch.total, **common
            )
            # Fewer records here than on the first worker: repeat this worker's last chunk so
            # that every worker runs the same number of batches (dist_sync waits for all).
            while produced < target:
                if last is None:
                    raise ClientError(
                        f"{source}: {epoch.total} sample(s) in the stream, none for this host (of {self.workers})"
                    )
                for item in self._chunk_batches(last, seed + produced, train, source):
                    yield item
                    produced += 1
                    if produced >= target:
                        break

    def _check_count(self, epoch: PipeEpoch, train: bool) -> None:
        total = epoch.total or 0
        if total == 0:
            raise ClientError(f"{epoch.path}: the stream holds no records")
        if train and total < self.batch_size and self.distribution != "ShardedByS3Key":
            raise ClientError(
                f"{epoch.path}: {total} training sample(s), fewer than mini_batch_size={self.batch_size}; "
                "add images or lower mini_batch_size"
            )
        if train and not self.warned_count and total != self.num_training_samples and self.workers == 1:
            self.warned_count = True
            log.warning(
                "num_training_samples=%d but %s holds %d samples; the learning-rate schedule counts iterations "
                "from num_training_samples",
                self.num_training_samples,
                epoch.path.name,
                total,
            )
