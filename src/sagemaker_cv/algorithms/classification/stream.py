"""Image classification in Pipe mode: im2rec RecordIO or an augmented manifest (image + label)
streamed through `<channel>_<n>` FIFOs, read with the same ImageRecordIter (decoding, resize,
crop and augmentation) as File mode, through small chunk files (`inputs.spool`).

The stream cannot be scanned before training, so it is checked as it arrives: every record's
labels before it is trained on (a bad label is a ClientError naming the FIFO, the record or
manifest sample, and the value); an image that cannot be decoded is skipped and reported, as in
File mode, when MXNet's decoder stops on it.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mxnet as mx
import numpy as np

from sagemaker_cv.algorithms.classification.records import (
    LabelRules,
    PreparedRecords,
    SampleChecks,
    check_labels,
)
from sagemaker_cv.contract import logs
from sagemaker_cv.contract.config import Channel
from sagemaker_cv.contract.content_types import RECORDIO
from sagemaker_cv.contract.errors import AlgorithmError, ClientError
from sagemaker_cv.contract.paths import MLPaths
from sagemaker_cv.distributed.plan import data_shard
from sagemaker_cv.inputs import manifest
from sagemaker_cv.inputs.framing import encode, iter_payloads
from sagemaker_cv.inputs.pipe import PipeChannel, PipeEpoch, PipeSettings, batches_per_epoch
from sagemaker_cv.inputs.spool import Chunk, Spooler

log = logs.get("classification")

#: the attributes assumed when an augmented-manifest channel names none (Ground Truth's usual pair)
DEFAULT_ATTRIBUTES = ("source-ref", "class")
SPLITS = ("train", "validation")


@dataclass(frozen=True)
class StreamSpec:
    """A split read in Pipe mode."""

    channel: str
    distribution: str
    layout: manifest.ManifestLayout | None  # None: im2rec RecordIO records
    label_format: str = "multi-hot"


def resolve_streams(channels: dict[str, Channel], hp) -> tuple[dict[str, StreamSpec], list[str]]:
    """The splits read in Pipe mode, and every problem with how the channels ask for it."""
    streams: dict[str, StreamSpec] = {}
    problems: list[str] = []
    for name, ch in channels.items():
        wrapped = (ch.record_wrapper or "None") == "RecordIO"
        if ch.input_mode != "Pipe":
            if wrapped and name in SPLITS:
                problems.append(
                    f"channel {name!r} RecordWrapperType=RecordIO (an augmented manifest) in {ch.input_mode} "
                    "mode: SageMaker streams augmented manifests in Pipe mode only; set TrainingInputMode to Pipe"
                )
            continue
        if name not in SPLITS:
            problems.append(
                f"channel {name!r}: Pipe input mode is for the RecordIO channels train and validation; use File"
            )
            continue
        if ch.media_type not in (None, RECORDIO):
            problems.append(
                f"channel {name!r} ContentType={ch.content_type!r} in Pipe mode: expected {RECORDIO} (im2rec "
                "files or an augmented manifest); images with .lst files need File mode"
            )
            continue
        try:
            layout = manifest.layout_for(ch, DEFAULT_ATTRIBUTES)
            fmt = manifest.label_format(ch) if layout else "multi-hot"
        except ClientError as exc:
            problems.extend(exc.problems)
            continue
        streams[name] = StreamSpec(name, ch.distribution, layout, fmt)
    if "train" in streams and hp.get("use_weighted_loss"):
        problems.append(
            "use_weighted_loss=1 with the train channel in Pipe mode: the loss weights need every label before "
            "training starts, which a stream cannot give; use File mode or use_weighted_loss=0"
        )
    return streams, problems


def _pack(number: int, labels: tuple[float, ...], image: bytes) -> bytes:
    if len(labels) == 1:
        header = mx.recordio.IRHeader(0, labels[0], number - 1, 0)
    else:
        header = mx.recordio.IRHeader(len(labels), np.asarray(labels, dtype=np.float32), number - 1, 0)
    return mx.recordio.pack(header, image)


class ClassificationStream:
    """One split's Pipe-mode channel: per epoch, batches from the next FIFO."""

    def __init__(
        self,
        spec: StreamSpec,
        paths: MLPaths,
        rules: LabelRules,
        *,
        batch_size: int,
        scratch: Path,
        settings: PipeSettings,
        make_iter,
        workers: int = 1,
        rank: int = 0,
        num_training_samples: int = 0,
    ):
        self.spec, self.rules, self.batch_size = spec, rules, batch_size
        self.scratch, self.make_iter = scratch, make_iter
        self.workers, self.num_training_samples = workers, num_training_samples
        group = len(spec.layout.attributes) if spec.layout else 1
        parts, part = data_shard(spec.distribution, workers, rank)
        self.channel = PipeChannel(spec.channel, paths.data_dir, settings, parts, part, group)
        self.skipped: list[str] = []
        self.warned_count = False

    # ---- records -------------------------------------------------------------------------------

    def _records(self, epoch: PipeEpoch) -> Iterator[tuple[int, bytes]]:
        """(sample number, im2rec record) with labels checked, from a FIFO's samples."""
        source = epoch.path.name
        for sample in epoch:
            if self.spec.layout is None:
                payload = sample.payloads[0]
                where = f"{source} record {sample.number}"
                try:
                    header, _ = mx.recordio.unpack(payload)
                except struct.error:
                    raise ClientError(
                        f"{where}: too short to hold an image record header; make the file with im2rec"
                    ) from None
                problem = check_labels(np.atleast_1d(np.asarray(header.label, dtype=np.float32)), self.rules)
                if problem:
                    raise ClientError(f"{where} (id {header.id}): {problem}")
                yield sample.number, payload
                continue
            layout, index = self.spec.layout, sample.number - 1
            image, label = sample.payloads
            manifest.check_image(image, manifest.where(source, index, layout, 0))
            labels = manifest.classification_label(
                label,
                manifest.where(source, index, layout, 1),
                num_classes=self.rules.num_classes,
                multi_label=self.rules.multi_label,
                fmt=self.spec.label_format,
            )
            yield sample.number, _pack(sample.number, labels, image)

    def _where(self, source: str, number: int) -> str:
        if self.spec.layout is None:
            return f"{source} record {number}"
        return f"{source} sample {number - 1}"

    # ---- chunks --------------------------------------------------------------------------------

    def _clean(self, chunk: Chunk, start: int, source: str, error: Exception) -> bool:
        """MXNet stopped inside a chunk: rewrite it with the records from `start` on (those before
        were trained on) without its undecodable images. False when nothing is left."""
        with open(chunk.path, "rb") as f:
            payloads = list(iter_payloads(f, str(chunk.path)))[start : chunk.records]
        checks = SampleChecks(self.rules)
        keep = []
        for number, payload in zip(chunk.numbers[start:], payloads):
            header, image = mx.recordio.unpack(payload)
            labels = np.atleast_1d(np.asarray(header.label, dtype=np.float32))
            if checks.image_ok(self._where(source, number), labels, image):
                keep.append((number, payload))
        if checks.problems.items:
            raise ClientError(checks.problems.as_list())
        if not checks.skipped:
            raise AlgorithmError(f"{source}: MXNet's image iterator failed on a chunk of the stream: {error}")
        for note in checks.skipped:
            log.warning("Skipped an undecodable image: %s", note)
        self.skipped.extend(checks.skipped)
        pad = -len(keep) % self.batch_size if keep else 0
        keep += [keep[i % len(keep)] for i in range(pad)]
        tmp = chunk.path.with_suffix(".clean")
        with open(tmp, "wb") as f:
            for _, payload in keep:
                f.write(encode(payload))
        tmp.replace(chunk.path)
        chunk.numbers, chunk.pad = [n for n, _ in keep], pad
        return bool(keep)

    def _chunk_batches(
        self, chunk: Chunk, seed: int, train: bool, source: str
    ) -> Iterator[tuple[object, int]]:
        """(batch, real samples in it) over one chunk, going on past undecodable images (the
        chunk is rewritten without them, so a later pass over it does not meet them again)."""
        while chunk.numbers:
            prepared = PreparedRecords(
                self.spec.channel, source, chunk.path, chunk.path.with_suffix(".idx"), len(chunk.numbers)
            )
            done = 0
            try:
                for batch in self.make_iter(prepared, train=train, seed=seed):
                    yield batch, max(0, min(self.batch_size, chunk.records - done))
                    done += self.batch_size
                return
            except mx.base.MXNetError as exc:
                self._clean(chunk, done, source, exc)

    # ---- epochs --------------------------------------------------------------------------------

    def epoch(self, seed: int, train: bool = True) -> Iterator[tuple[object, int]]:
        """One epoch from the next FIFO: (batch, real samples) pairs. Training yields the same
        number of batches on every worker (pipe.batches_per_epoch)."""
        epoch = self.channel.next_epoch()
        source = epoch.path.name
        fixed = (
            batches_per_epoch(
                batch_size=self.batch_size,
                workers=self.workers,
                distribution=self.spec.distribution,
                num_training_samples=self.num_training_samples,
            )
            if train
            else None
        )
        produced, last = 0, None
        directory = self.scratch / f"{source}-chunks"
        with Spooler(
            self._records(epoch),
            directory,
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
            if not train or (self.workers == 1 and fixed is None):
                return
            target = fixed or batches_per_epoch(
                batch_size=self.batch_size,
                workers=self.workers,
                distribution=self.spec.distribution,
                num_training_samples=self.num_training_samples,
                stream_records=epoch.total,
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
        if train and total < self.batch_size and self.spec.distribution != "ShardedByS3Key":
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
