"""Semantic segmentation in Pipe mode: an augmented manifest of image and PNG mask references
(`AttributeNames` such as ["source-ref", "city-streets-ref"], RecordWrapperType RecordIO) streamed
through `<channel>_<n>` FIFOs: per sample, one RecordIO record with the image's bytes, then one with
the mask's (contract 4.1).

A stream cannot be scanned before training, so each sample is checked as it arrives, by File
mode's checks (`dataset`): the image attribute holds an image, the mask attribute a PNG that
decodes, whose pixel values all map to classes and whose size is the image's. A defect is a
ClientError naming the FIFO, the sample (its 0-based manifest line), the attribute and the value;
an image that does not decode is skipped and named, as File mode skips unreadable files.

Checked pairs go into small chunk files (`inputs.spool`) and come back through File mode's
transforms and thread pool (`loader`): the same random crops seeded per sample for training, the
same whole images or centre crops for validation, the same uint8 batches.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from mxnet.gluon.data import Dataset

from sagemaker_cv.algorithms.segmentation.dataset import (
    Unreadable,
    decode_image,
    decode_mask,
    mask_defect,
    pixel_problem,
    size_mismatch,
)
from sagemaker_cv.algorithms.segmentation.labels import DEFAULT, LabelMap
from sagemaker_cv.algorithms.segmentation.loader import chunk_loader, transform
from sagemaker_cv.contract import logs
from sagemaker_cv.contract.config import Channel
from sagemaker_cv.contract.errors import ClientError
from sagemaker_cv.inputs import manifest
from sagemaker_cv.inputs.images import read_header
from sagemaker_cv.inputs.pipe import PipeSample, PipeSettings
from sagemaker_cv.inputs.recordio import iter_payloads
from sagemaker_cv.inputs.spool import Chunk
from sagemaker_cv.inputs.stream import RecordStream, pipe_splits

log = logs.get("segmentation")

#: the attributes assumed when an augmented-manifest channel names none: the image, then its mask
DEFAULT_ATTRIBUTES = ("source-ref", "label-ref")
_LENGTH = struct.Struct("<I")


@dataclass(frozen=True)
class StreamSpec:
    """A split read in Pipe mode, and the label map its masks are decoded with."""

    channel: str
    distribution: str
    layout: manifest.ManifestLayout
    label_map: LabelMap = DEFAULT


def resolve_streams(channels: dict[str, Channel]) -> tuple[dict[str, StreamSpec], list[str]]:
    """The splits read in Pipe mode, and every problem with how the channels ask for it."""
    splits, problems = pipe_splits(
        channels,
        DEFAULT_ATTRIBUTES,
        file_mode_formats=(
            "(an augmented manifest of image and PNG mask references); image and PNG channels need File mode"
        ),
    )
    streams: dict[str, StreamSpec] = {}
    for name, (ch, layout) in splits.items():
        if layout is None:
            problems.append(
                f"channel {name!r} RecordWrapperType={ch.record_wrapper or 'None'!r} in Pipe mode: semantic "
                "segmentation streams augmented manifests only; set RecordWrapperType to RecordIO with "
                f"AttributeNames such as {list(DEFAULT_ATTRIBUTES)}, or use File mode with image and PNG channels"
            )
            continue
        plain = [n for n in layout.attributes if not n.endswith("-ref")]
        if plain:
            problems.append(
                f"channel {name!r} AttributeNames={list(layout.attributes)!r}: {', '.join(map(repr, plain))} "
                "does not end in -ref; the image and its PNG mask both stream as the S3 objects that -ref "
                "attributes name (e.g. ['source-ref', 'city-streets-ref'])"
            )
            continue
        streams[name] = StreamSpec(name, ch.distribution, layout)
    return streams, problems


def pack(image: bytes, mask: bytes) -> bytes:
    """One chunk record holding a sample's encoded image and mask."""
    return _LENGTH.pack(len(image)) + image + mask


def unpack(record: bytes) -> tuple[bytes, bytes]:
    (length,) = _LENGTH.unpack_from(record)
    return record[_LENGTH.size : _LENGTH.size + length], record[_LENGTH.size + length :]


class ChunkSamples(Dataset):
    """The samples of one chunk (its records in file order, pad included), decoded and
    transformed as File mode's `SegmentationSamples` does; training augmentation is seeded by
    (seed, sample number)."""

    def __init__(
        self,
        records: list[tuple[int, bytes]],
        label_map: LabelMap,
        num_classes: int,
        *,
        mode: str,
        crop_size: int,
        base_size: int,
        seed: int,
    ):
        self.records, self.label_map, self.num_classes = records, label_map, num_classes
        self.mode, self.crop_size, self.base_size, self.seed = mode, crop_size, base_size, seed

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        number, record = self.records[index]
        image, mask = unpack(record)
        name = f"sample {number}"
        values, _ = decode_mask(io.BytesIO(mask), name)  # checked when the chunk was written
        classes, _ = self.label_map.encode(values, self.num_classes)
        return transform(
            decode_image(image, name), classes, self.mode, self.crop_size, self.base_size, (self.seed, number)
        )


def chunk_records(chunk: Chunk) -> list[tuple[int, bytes]]:
    """(sample number, record) of every record of a chunk file, the pad included: batches stay whole."""
    with open(chunk.path, "rb") as f:
        return list(zip(chunk.numbers, iter_payloads(f, str(chunk.path))))


class SegmentationStream(RecordStream):
    """One split's Pipe-mode channel of image and mask pairs, in File mode's batches: random crops
    for training, `validation_mode` ("whole" or "center", as `SegmentationSamples`) otherwise."""

    def __init__(
        self,
        spec: StreamSpec,
        data_dir: Path,
        settings: PipeSettings,
        *,
        num_classes: int,
        validation_mode: str,
        crop_size: int,
        base_size: int,
        threads: int | None,
        **kw,
    ):
        super().__init__(
            spec.channel,
            data_dir,
            settings,
            distribution=spec.distribution,
            group=len(spec.layout.attributes),
            **kw,
        )
        self.spec, self.num_classes, self.validation_mode = spec, num_classes, validation_mode
        self.crop_size, self.base_size, self.threads = crop_size, base_size, threads

    def convert(self, sample: PipeSample, source: str) -> bytes | None:
        layout, index = self.spec.layout, sample.number - 1
        image, mask = sample.payloads
        image_at, mask_at = (manifest.where(source, index, layout, i) for i in (0, 1))
        manifest.check_image(image, image_at)
        manifest.check_png(mask, mask_at)
        for raw, at in ((image, image_at), (mask, mask_at)):
            problem = pixel_problem(read_header(raw))
            if problem:
                raise ClientError(f"{at}: {problem}")
        try:
            image_size = decode_image(image, image_at).shape
        except Unreadable:
            log.warning("%s is not a readable image file; the sample is skipped", image_at)
            self.skipped.append(f"{source} sample {index}")
            return None
        try:
            values, channel_problem = decode_mask(io.BytesIO(mask), mask_at)
        except Unreadable:
            raise ClientError(
                f"{mask_at}: a PNG of {len(mask)} bytes that does not decode (truncated or corrupt), so the "
                "image has no labels"
            ) from None
        defect = mask_defect(values, channel_problem, self.spec.label_map, self.num_classes)
        defect = defect or size_mismatch(values.shape, image_size, f"the image ({layout.attributes[0]!r})")
        if defect:
            raise ClientError(f"{mask_at}: {defect}")
        return pack(image, mask)

    def iterate(self, chunk: Chunk, *, train: bool, seed: int):
        samples = ChunkSamples(
            chunk_records(chunk),
            self.spec.label_map,
            self.num_classes,
            mode="train" if train else self.validation_mode,
            crop_size=self.crop_size,
            base_size=self.base_size,
            seed=seed,
        )
        return chunk_loader(samples, self.batch_size, self.threads)
