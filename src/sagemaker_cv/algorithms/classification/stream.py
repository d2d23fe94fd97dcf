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
from dataclasses import dataclass
from pathlib import Path

import mxnet as mx
import numpy as np

from sagemaker_cv.algorithms.classification.records import (
    KEPT,
    LabelRules,
    PreparedRecords,
    SampleChecks,
    check_labels,
)
from sagemaker_cv.contract import logs
from sagemaker_cv.contract.config import Channel
from sagemaker_cv.contract.errors import AlgorithmError, ClientError
from sagemaker_cv.contract.paths import MLPaths
from sagemaker_cv.inputs import manifest
from sagemaker_cv.inputs.pipe import PipeSample, PipeSettings
from sagemaker_cv.inputs.spool import Chunk
from sagemaker_cv.inputs.stream import RecordStream, pipe_splits, read_chunk, rewrite_chunk

log = logs.get("classification")

#: the attributes assumed when an augmented-manifest channel names none (Ground Truth's usual pair)
DEFAULT_ATTRIBUTES = ("source-ref", "class")


@dataclass(frozen=True)
class StreamSpec:
    """A split read in Pipe mode."""

    channel: str
    distribution: str
    layout: manifest.ManifestLayout | None  # None: im2rec RecordIO records
    label_format: str = "multi-hot"


def resolve_streams(channels: dict[str, Channel], hp) -> tuple[dict[str, StreamSpec], list[str]]:
    """The splits read in Pipe mode, and every problem with how the channels ask for it."""
    splits, problems = pipe_splits(
        channels,
        DEFAULT_ATTRIBUTES,
        file_mode_formats="(im2rec files or an augmented manifest); images with .lst files need File mode",
    )
    streams: dict[str, StreamSpec] = {}
    for name, (ch, layout) in splits.items():
        try:
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


class ClassificationStream(RecordStream):
    """One split's Pipe-mode channel: im2rec records (checked) or manifest samples (packed as
    im2rec records), read by ImageRecordIter; undecodable images skipped and named."""

    recoverable = (mx.base.MXNetError,)

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
        super().__init__(
            spec.channel,
            paths.data_dir,
            settings,
            batch_size=batch_size,
            scratch=scratch,
            distribution=spec.distribution,
            workers=workers,
            rank=rank,
            group=len(spec.layout.attributes) if spec.layout else 1,
            num_training_samples=num_training_samples,
        )
        self.spec, self.rules, self.make_iter = spec, rules, make_iter

    def convert(self, sample: PipeSample, source: str) -> bytes:
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
            return payload
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
        return _pack(sample.number, labels, image)

    def iterate(self, chunk: Chunk, *, train: bool, seed: int):
        records = PreparedRecords(
            self.spec.channel,
            chunk.path.name,
            (chunk.path,),
            str(chunk.path),
            chunk.path.with_suffix(".idx"),
            len(chunk.numbers),
            [],
        )
        return self.make_iter(records, train=train, seed=seed)

    def recover(self, chunk: Chunk, start: int, source: str, error: BaseException) -> None:
        """Drop the chunk's undecodable images from `start` on, as File mode skips them; any
        other problem (an image smaller than image_shape) is a ClientError."""
        checks = SampleChecks(self.rules)
        keep = []
        for number, payload in read_chunk(chunk, start):
            header, image = mx.recordio.unpack(payload)
            labels = np.atleast_1d(np.asarray(header.label, dtype=np.float32))
            where = (
                f"{source} record {number}" if self.spec.layout is None else f"{source} sample {number - 1}"
            )
            if checks.image(where, labels, image) == KEPT:
                keep.append((number, payload))
        if checks.problems:
            raise ClientError(checks.problems.as_list())
        if not checks.skipped_count:
            raise AlgorithmError(f"{source}: MXNet's image iterator failed on a chunk of the stream: {error}")
        for note in checks.skipped:
            log.warning("Skipped an undecodable image: %s", note)
        self.skipped.extend(checks.skipped)
        rewrite_chunk(chunk, keep, self.batch_size)
