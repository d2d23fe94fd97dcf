"""Object detection in Pipe mode: `im2rec --pack-label` RecordIO, or an augmented manifest (image
then Ground Truth bounding-box object), streamed through `<channel>_<n>` FIFOs, read by the same readers (decoding, augmentation, label padding) as File mode,
through small chunk files (`inputs.spool`, `inputs.stream.RecordStream`).

The stream cannot be scanned before training, so each record's label is checked as it arrives,
by the File-mode checks (`records.check_record`): a bad label is a ClientError naming the FIFO,
the record (or manifest sample and attribute) and the object; a label that must change (clipped boxes, no objects, padding beyond
label_width) is rewritten as File mode rewrites it. An undecodable image is skipped and named when
the reader stops on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import mxnet as mx
import numpy as np

from sagemaker_cv.algorithms.detection.loader import UndecodableImage
from sagemaker_cv.algorithms.detection.records import (
    PreparedDetection,
    RecordChecks,
    check_record,
    image_size,
)
from sagemaker_cv.contract import logs
from sagemaker_cv.contract.config import Channel
from sagemaker_cv.contract.errors import AlgorithmError, ClientError
from sagemaker_cv.inputs import manifest
from sagemaker_cv.inputs.pipe import PipeSample
from sagemaker_cv.inputs.recordio import unpack_image_record
from sagemaker_cv.inputs.spool import Chunk
from sagemaker_cv.inputs.stream import RecordStream, pipe_splits, read_chunk, rewrite_chunk

log = logs.get("detection")


#: the attributes assumed when an augmented-manifest channel names none (Ground Truth's usual pair)
DEFAULT_ATTRIBUTES = ("source-ref", "bounding-box")


@dataclass(frozen=True)
class StreamSpec:
    """A split read in Pipe mode."""

    channel: str
    distribution: str
    layout: manifest.ManifestLayout | None = None  # None: im2rec RecordIO records


def resolve_streams(channels: dict[str, Channel]) -> tuple[dict[str, StreamSpec], list[str]]:
    """The splits read in Pipe mode, and every problem with how the channels ask for it."""
    splits, problems = pipe_splits(
        channels,
        DEFAULT_ATTRIBUTES,
        file_mode_formats="(im2rec --pack-label files); images with JSON annotations need File mode",
    )
    return {
        name: StreamSpec(name, ch.distribution, layout) for name, (ch, layout) in splits.items()
    }, problems


class DetectionStream(RecordStream):
    """One split's Pipe-mode channel of detection records, read chunk by chunk by `make_iter`."""

    #: what the readers raise on an undecodable image: MXNet's iterator (validation), ours (training)
    recoverable = (mx.base.MXNetError, UndecodableImage)

    def __init__(
        self, spec: StreamSpec, data_dir: Path, *, num_classes: int, label_width: int, make_iter, **kw
    ):
        group = len(spec.layout.attributes) if spec.layout else 1
        super().__init__(spec.channel, data_dir, distribution=spec.distribution, group=group, **kw)
        self.spec, self.num_classes, self.label_width, self.make_iter = (
            spec,
            num_classes,
            label_width,
            make_iter,
        )

    def convert(self, sample: PipeSample, source: str) -> bytes:
        payload, where = sample.payloads[0], f"{source} record {sample.number}"
        if self.spec.layout is not None:
            payload, where = self._pack_manifest_sample(sample, source)
        checks = RecordChecks(self.spec.channel, self.label_width)
        checked = check_record(checks, where, payload, self.num_classes)
        if checked is None:
            raise ClientError(checks.problems.as_list())
        return checked.payload(payload)

    def _pack_manifest_sample(self, sample: PipeSample, source: str) -> tuple[bytes, str]:
        """An image and its bounding-box object as the detection record im2rec would write."""
        layout, index = self.spec.layout, sample.number - 1
        image, boxes = sample.payloads
        manifest.check_image(image, manifest.where(source, index, layout, 0))
        at = manifest.where(source, index, layout, 1)
        label = manifest.detection_label_vector(
            manifest.detection_boxes(boxes, at, num_classes=self.num_classes)
        )
        header = mx.recordio.IRHeader(len(label), np.asarray(label, dtype=np.float32), index, 0)
        return mx.recordio.pack(header, image), at

    def iterate(self, chunk: Chunk, *, train: bool, seed: int):
        records = PreparedDetection(self.spec.channel, chunk.path.name, chunk.path, len(chunk.numbers))
        return self.make_iter(records, train=train, seed=seed)

    def recover(self, chunk: Chunk, start: int, source: str, error: BaseException) -> None:
        """Drop the chunk's undecodable images from `start` on, as File mode skips them."""
        keep, skipped = [], []
        for number, payload in read_chunk(chunk, start):
            unpacked = unpack_image_record(payload)  # checked when the chunk was written
            if image_size(unpacked[2]) is None:
                kind = "record" if self.spec.layout is None else "manifest sample"
                skipped.append(f"{source} {kind} {number} (id {unpacked[0]})")
            else:
                keep.append((number, payload))
        if not skipped:
            raise AlgorithmError(f"{source}: the detection reader failed on a chunk of the stream: {error}")
        for note in skipped:
            log.warning("Skipped an undecodable image: %s", note)
        self.skipped.extend(skipped)
        rewrite_chunk(chunk, keep, self.batch_size)
