"""Batches of (images, masks) for training and validation.

A gluon DataLoader with a thread pool: OpenCV releases the GIL while it decodes and resizes, so
threads use every core without copying batches between processes. Batches stay numpy uint8 (NHWC
images, NHW class indices with 255 = ignore) until the task moves them to its devices, a quarter of
the bytes of float32.

Every training sample's augmentation is drawn from a generator seeded by (pass seed, index), so
a run is reproducible whatever thread prepares which sample; the pass seed comes from the task
(job seed, epoch, pass), so a resumed job shuffles and augments as an uninterrupted one.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import numpy as np
from mxnet.gluon.data import BatchSampler, DataLoader, Dataset, Sampler, SequentialSampler

from sagemaker_cv.algorithms.segmentation.dataset import Split, read_image, read_mask
from sagemaker_cv.algorithms.segmentation.transforms import center_crop, train_sample


class Passes(Sampler):
    """Yields (pass seed, index) over this worker's part of the samples, reshuffled every pass
    with a seed from `pass_seed` (None: in order, seed 0)."""

    def __init__(self, indices: list[int], pass_seed: Callable[[], int] | None):
        self.indices, self.pass_seed = indices, pass_seed

    def __iter__(self) -> Iterator[tuple[int, int]]:
        if self.pass_seed is None:
            return iter([(0, int(i)) for i in self.indices])
        seed = self.pass_seed()
        order = np.random.default_rng(seed).permutation(self.indices)
        return iter([(seed, int(i)) for i in order])

    def __len__(self) -> int:
        return len(self.indices)


class SegmentationSamples(Dataset):
    """One split's samples decoded and transformed: "train" (random crops), "center" (crop_size
    centre crops) or "whole" (the image as it is)."""

    def __init__(self, split: Split, num_classes: int, mode: str, crop_size: int, base_size: int):
        self.split, self.num_classes, self.mode = split, num_classes, mode
        self.crop_size, self.base_size = crop_size, base_size

    def __len__(self) -> int:
        return self.split.count

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The decoded image and its class-index mask (checked when the data was scanned)."""
        image_path, mask_path = self.split.samples[index]
        values, _ = read_mask(mask_path)
        classes, _ = self.split.label_map.encode(values, self.num_classes)
        return read_image(image_path), classes

    def __getitem__(self, key) -> tuple[np.ndarray, np.ndarray]:
        seed, index = key if isinstance(key, tuple) else (0, key)
        image, mask = self.load(index)
        return transform(image, mask, self.mode, self.crop_size, self.base_size, (seed, index))


def transform(
    image: np.ndarray, mask: np.ndarray, mode: str, crop_size: int, base_size: int, key: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """A decoded sample as one mode makes it: "train" draws its augmentation from a generator
    seeded by `key` (pass seed, sample), "center" and "whole" are fixed."""
    if mode == "train":
        return train_sample(image, mask, base_size, crop_size, np.random.default_rng(list(key)))
    if mode == "center":
        return center_crop(image, mask, crop_size)
    return np.ascontiguousarray(image), mask


def stack(samples: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    return np.stack([s[0] for s in samples]), np.stack([s[1] for s in samples])


def default_workers() -> int:
    return os.cpu_count() or 1


def train_loader(
    samples: SegmentationSamples,
    batch_size: int,
    num_parts: int,
    part_index: int,
    workers: int | None,
    pass_seed: Callable[[], int],
) -> DataLoader:
    """Shuffled batches of this worker's part. A pass's remainder rolls over into the next pass
    (as the recipe's `last_batch='rollover'`): every batch is full, BatchNorm never sees one sample."""
    passes = Passes(list(range(part_index, len(samples), num_parts)), pass_seed)
    return _loader(samples, BatchSampler(passes, batch_size, "rollover"), workers)


def validation_loader(samples: SegmentationSamples, batch_size: int, workers: int | None) -> DataLoader:
    passes = Passes(list(range(len(samples))), None)
    return _loader(samples, BatchSampler(passes, batch_size, "keep"), workers)


def chunk_loader(samples: Dataset, batch_size: int, workers: int | None) -> DataLoader:
    """Batches of `samples` in their order (a Pipe-mode chunk: shuffled when written, whole
    batches)."""
    return _loader(samples, BatchSampler(SequentialSampler(len(samples)), batch_size, "keep"), workers)


def _loader(samples: Dataset, batches: BatchSampler, workers: int | None) -> DataLoader:
    workers = default_workers() if workers is None else workers
    return DataLoader(
        samples, batch_sampler=batches, batchify_fn=stack, num_workers=workers, thread_pool=True
    )
