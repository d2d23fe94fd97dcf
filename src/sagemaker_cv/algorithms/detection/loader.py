"""Training batches of detection records, augmented as GluonCV's SSD recipe (`augment`).

A gluon DataLoader with a thread pool reads records by offset from the prepared .rec, decodes
them with OpenCV (which releases the GIL) and augments them; each sample's generator is seeded by
(pass seed, record index). Batches look like MXNet's ImageDetRecordIter's, which validation still
uses: float32 NCHW RGB pixels at image_shape, and label rows [3, height, width, label length,
header width, object width, objects (class, corners as fractions)..., -1 padding].
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import cv2
import mxnet as mx
import numpy as np
from mxnet.gluon.data import DataLoader, Dataset

from sagemaker_cv.algorithms.detection.augment import train_sample
from sagemaker_cv.algorithms.detection.labels import HEADER, record_objects
from sagemaker_cv.inputs.recordio import iter_records, record_offsets, unpack_image_record


class UndecodableImage(ValueError):
    """A record's image does not decode (Pipe-mode chunks are not checked beforehand)."""


class TrainingRecords(Dataset):
    """The records of one .rec file; item (seed, index) is record `index` augmented with a
    generator seeded by (seed, index)."""

    def __init__(self, rec: Path, image_shape: int, label_width: int):
        self.rec, self.size, self.label_width = rec, image_shape, label_width
        self.offsets = list(record_offsets(rec))

    def __len__(self) -> int:
        return len(self.offsets)

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Record `index`: its RGB image and its objects' classes and corners in pixels."""
        with open(self.rec, "rb") as f:
            f.seek(self.offsets[index])
            payload = next(iter_records(f, self.rec.name)).payload
        unpacked = unpack_image_record(payload)  # checked when the data was prepared
        if isinstance(unpacked, str):
            raise UndecodableImage(f"{self.rec.name} record {index + 1}: {unpacked}")
        _, label, buf = unpacked
        image = cv2.imdecode(np.frombuffer(buf, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise UndecodableImage(f"{self.rec.name} record {index + 1}: the image does not decode")
        height, width = image.shape[:2]
        classes, corners = record_objects(label)
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB), classes, corners * [width, height, width, height]

    def __getitem__(self, key: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        seed, index = key
        image, classes, boxes = self.read(index)
        rng = np.random.default_rng([seed, index])
        image, boxes, classes = train_sample(image, boxes, classes, self.size, rng)
        return image.transpose(2, 0, 1), label_row(classes, boxes, self.size, self.label_width)


def label_row(classes: np.ndarray, boxes: np.ndarray, size: int, label_width: int) -> np.ndarray:
    """One sample's label as ImageDetRecordIter pads it (`labels.iterator_objects` reads it)."""
    row = np.full(4 + label_width, -1, dtype=np.float32)
    objects = np.concatenate([classes[:, None].astype(np.float32), boxes], axis=1).ravel()
    row[:4] = (3, size, size, len(HEADER) + objects.size)
    row[4:6] = HEADER
    row[6 : 6 + objects.size] = objects
    return row


def _stack(samples: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    return np.stack([s[0] for s in samples]), np.stack([s[1] for s in samples])


def training_batches(
    rec: Path,
    *,
    batch_size: int,
    image_shape: int,
    label_width: int,
    seed: int,
    num_parts: int = 1,
    part_index: int = 0,
    shuffle: bool = True,
    threads: int | None = None,
) -> Iterator[mx.io.DataBatch]:
    """One pass over this worker's part of the records (every `num_parts`-th from `part_index`),
    shuffled by `seed` unless told not to; the last batch is completed from the pass's start, as
    ImageDetRecordIter's round_batch does, so that every batch is whole."""
    samples = TrainingRecords(rec, image_shape, label_width)
    indices = np.arange(part_index, len(samples), num_parts)
    if shuffle:
        indices = np.random.default_rng(seed).permutation(indices)
    if not len(indices):
        return
    count = -(-len(indices) // batch_size) * batch_size
    keys = [(seed, int(indices[i % len(indices)])) for i in range(count)]
    batches = [keys[i : i + batch_size] for i in range(0, count, batch_size)]
    loader = DataLoader(
        samples,
        batch_sampler=batches,
        batchify_fn=_stack,
        num_workers=threads or max(2, os.cpu_count() or 1),
        thread_pool=True,
    )
    for images, labels in loader:
        yield mx.io.DataBatch(data=[mx.nd.array(images)], label=[mx.nd.array(labels)], pad=0)
