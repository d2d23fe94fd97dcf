"""The image and mask transforms of GluonCV's segmentation recipe (`SegmentationDataset`), on numpy
arrays with OpenCV (several times faster than the recipe's PIL) and an explicit random generator,
so a sample's augmentation depends only on (seed, pass, index) whatever thread computes it.

Masks are resized with nearest neighbour (class indices must not be blended) and padded with
255 ("ignore"): the recipe pads them with 0, which teaches the padding to be class 0.
"""

from __future__ import annotations

import cv2
import numpy as np

from sagemaker_cv.algorithms.segmentation.labels import IGNORE


def round_up8(crop_size: int) -> int:
    """PSP and DeepLab pool the stride-8 feature map to fixed sizes: crops are multiples of 8."""
    return -(-crop_size // 8) * 8


def _resize(image: np.ndarray, mask: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    return (
        cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR),
        cv2.resize(mask, (width, height), interpolation=cv2.INTER_NEAREST),
    )


def scaled_size(height: int, width: int, long_side: int) -> tuple[int, int]:
    """(height, width) with the longer side `long_side` and the aspect ratio kept (as the recipe rounds)."""
    if height > width:
        return long_side, int(width * long_side / height + 0.5)
    return int(height * long_side / width + 0.5), long_side


def train_sample(
    image: np.ndarray, mask: np.ndarray, base_size: int, crop_size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Random flip, long side rescaled to base_size x [0.5, 2.0], padding to the crop, random
    crop_size crop, Gaussian blur half of the time (GluonCV's `_sync_transform`)."""
    if rng.random() < 0.5:
        image, mask = image[:, ::-1], mask[:, ::-1]
    long_side = int(rng.integers(int(base_size * 0.5), int(base_size * 2.0) + 1))
    height, width = scaled_size(image.shape[0], image.shape[1], long_side)
    image, mask = _resize(
        np.ascontiguousarray(image), np.ascontiguousarray(mask), max(height, 1), max(width, 1)
    )
    pad_h, pad_w = max(crop_size - image.shape[0], 0), max(crop_size - image.shape[1], 0)
    if pad_h or pad_w:
        image = cv2.copyMakeBorder(image, 0, pad_h, 0, pad_w, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        mask = cv2.copyMakeBorder(mask, 0, pad_h, 0, pad_w, cv2.BORDER_CONSTANT, value=IGNORE)
    y = int(rng.integers(0, image.shape[0] - crop_size + 1))
    x = int(rng.integers(0, image.shape[1] - crop_size + 1))
    image = image[y : y + crop_size, x : x + crop_size]
    mask = mask[y : y + crop_size, x : x + crop_size]
    if rng.random() < 0.5:
        sigma = rng.random()  # PIL's GaussianBlur radius is the standard deviation
        if sigma > 1e-3:
            image = cv2.GaussianBlur(image, (0, 0), sigmaX=sigma)
    return np.ascontiguousarray(image), np.ascontiguousarray(mask)


def center_crop(image: np.ndarray, mask: np.ndarray, crop_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Shorter side resized to crop_size, then the central crop_size square (the recipe's
    validation transform, used when validation_mini_batch_size > 1)."""
    h, w = image.shape[:2]
    if w > h:
        height, width = crop_size, int(w * crop_size / h + 0.5)
    else:
        height, width = int(h * crop_size / w + 0.5), crop_size
    image, mask = _resize(image, mask, height, width)
    y, x = (height - crop_size) // 2, (width - crop_size) // 2
    return (
        np.ascontiguousarray(image[y : y + crop_size, x : x + crop_size]),
        np.ascontiguousarray(mask[y : y + crop_size, x : x + crop_size]),
    )
