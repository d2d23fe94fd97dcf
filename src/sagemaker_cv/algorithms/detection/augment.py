"""SSD's training augmentation as GluonCV's recipe does it (`SSDDefaultTrainTransform`): colour
distortion, zoom out onto a mean-coloured canvas (half of the time, up to 4x), a crop that keeps
the objects (the SSD paper's samplers), a random interpolation to the network's size, a horizontal
flip. Written on numpy arrays with OpenCV and an explicit random generator, so that a sample's
augmentation depends only on (pass seed, record), whatever thread computes it: a resumed job
augments as an uninterrupted one, and every pass draws new augmentations.

Why not MXNet's ImageDetRecordIter (the built-in's reader, used before): its augmentation
generators are seeded with constants when the iterator is made (its `seed` only shuffles), so the
iterator made for each pass gave every image the same augmentation in every epoch; and its crop
samplers check no overlap with the objects unless every coverage bound is also set below 1, so
they cropped at random. Measured against the recipe in bench/bench_learning.py.
"""

from __future__ import annotations

import cv2
import numpy as np

#: GluonCV fills the zoomed-out canvas with the ImageNet mean (RGB, 0-255)
MEAN = (123.675, 116.28, 103.53)
#: (minimum IoU, maximum IoU) of every object with a crop: the SSD paper's samplers, then any crop
CROP_CONSTRAINTS = ((0.1, None), (0.3, None), (0.5, None), (0.7, None), (0.9, None), (None, 1.0))
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_TO_YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.321], [0.211, -0.523, 0.311]])
_FROM_YIQ = np.array([[1.0, 0.956, 0.621], [1.0, -0.272, -0.647], [1.0, -1.107, 1.705]])


# ---- colour ---------------------------------------------------------------------------------------


def distort_colour(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Brightness, then contrast, saturation and hue in one of two orders, each half of the time
    (float32 RGB in and out; like the recipe, values are not clipped to 0-255)."""
    image = image.astype(np.float32)
    if rng.uniform() > 0.5:
        image += rng.uniform(-32, 32)
    steps = (_contrast, _saturation, _hue) if rng.integers(0, 2) else (_saturation, _hue, _contrast)
    for step in steps:
        if rng.uniform() > 0.5:
            image = step(image, rng)
    return image


def _contrast(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The recipe's "contrast": every value scaled by one factor."""
    return image * np.float32(rng.uniform(0.5, 1.5))


def _saturation(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    alpha = rng.uniform(0.5, 1.5)
    return image * np.float32(alpha) + (image @ _LUMA)[..., None] * np.float32(1 - alpha)


def _hue(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A rotation of the chroma plane in YIQ space."""
    angle = rng.uniform(-18, 18) * np.pi
    u, w = np.cos(angle), np.sin(angle)
    rotation = np.array([[1.0, 0.0, 0.0], [0.0, u, -w], [0.0, w, u]])
    return image @ (_FROM_YIQ @ rotation @ _TO_YIQ).T.astype(np.float32)


# ---- geometry -------------------------------------------------------------------------------------


def box_iou(boxes: np.ndarray, crops: np.ndarray) -> np.ndarray:
    """IoU of each (xmin, ymin, xmax, ymax) row of `boxes` with each row of `crops`, (boxes, crops)."""
    crops = np.asarray(crops, np.float32).reshape(-1, 4)
    lt = np.maximum(boxes[:, None, :2], crops[None, :, :2])
    rb = np.minimum(boxes[:, None, 2:], crops[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    areas = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)[:, None]
    return inter / (areas + np.prod(crops[:, 2:] - crops[:, :2], axis=1)[None, :] - inter)


def crop_boxes(boxes: np.ndarray, crop: tuple[int, int, int, int]) -> np.ndarray:
    """Indices of the boxes whose centre lies in `crop` (x, y, width, height) and that keep an
    area, and those boxes clipped to the crop in its coordinates."""
    x, y, w, h = crop
    low, high = np.array([x, y], np.float32), np.array([x + w, y + h], np.float32)
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    inside = np.all((low <= centres) & (centres < high), axis=1)
    clipped = np.concatenate([np.maximum(boxes[:, :2], low), np.minimum(boxes[:, 2:], high)], axis=1)
    clipped -= np.concatenate([low, low])
    keep = inside & np.all(clipped[:, :2] < clipped[:, 2:], axis=1)
    return np.flatnonzero(keep), clipped[keep]


def sample_crop(
    boxes: np.ndarray, width: int, height: int, rng: np.random.Generator, max_trials: int = 50
) -> tuple[int, int, int, int]:
    """A crop (x, y, width, height) of side 0.3-1 of the image's and aspect ratio 1/2-2 meeting
    one of CROP_CONSTRAINTS for every object (the first of `max_trials` tries each), chosen at
    random among those found and the whole image, keeping at least one object's centre."""
    candidates = [(0, 0, width, height)]
    for low, high in CROP_CONSTRAINTS:
        # The tries of one sampler drawn at once (the recipe loops over them one by one).
        scale = rng.uniform(0.3, 1.0, max_trials)
        ratio = np.sqrt(rng.uniform(np.maximum(0.5, scale**2), np.minimum(2.0, 1 / scale**2)))
        crop_h, crop_w = (height * scale / ratio).astype(int), (width * scale * ratio).astype(int)
        top = rng.integers(0, np.maximum(height - crop_h, 1))
        left = rng.integers(0, np.maximum(width - crop_w, 1))
        if not len(boxes):
            return int(left[0]), int(top[0]), int(crop_w[0]), int(crop_h[0])
        iou = box_iou(boxes, np.stack([left, top, left + crop_w, top + crop_h], axis=1))
        low = -np.inf if low is None else low
        high = np.inf if high is None else high
        met = np.flatnonzero((iou.min(axis=0) >= low) & (iou.max(axis=0) <= high))
        if len(met):
            i = met[0]
            candidates.append((int(left[i]), int(top[i]), int(crop_w[i]), int(crop_h[i])))
    while candidates:
        crop = candidates.pop(int(rng.integers(0, len(candidates))))
        if len(crop_boxes(boxes, crop)[0]):
            return crop
    return (0, 0, width, height)


def train_sample(
    image: np.ndarray, boxes: np.ndarray, classes: np.ndarray, size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One augmented training sample: `image` RGB (H, W, 3) with `boxes` (n, 4) in its pixels and
    their `classes`; returns the float32 (size, size, 3) image, the boxes that stay, as fractions
    of it, and their classes."""
    image = distort_colour(image, rng)
    height, width = image.shape[:2]
    offset = np.zeros(2, np.float32)  # where the image sits on the zoomed-out canvas
    if rng.uniform() > 0.5:
        ratio = rng.uniform(1.0, 4.0)
        canvas_h, canvas_w = int(height * ratio), int(width * ratio)
        offset[:] = (rng.integers(0, canvas_w - width + 1), rng.integers(0, canvas_h - height + 1))
    else:
        canvas_h, canvas_w = height, width
    boxes = boxes.astype(np.float32) + np.concatenate([offset, offset])
    crop = sample_crop(boxes, canvas_w, canvas_h, rng)
    keep, boxes = crop_boxes(boxes, crop)
    image = _canvas_region(image, offset.astype(int), crop)
    interpolation = int(rng.integers(0, 5))  # nearest, linear, cubic, area, Lanczos: one at random
    image = cv2.resize(image, (size, size), interpolation=interpolation)
    boxes = boxes / np.array([crop[2], crop[3], crop[2], crop[3]], np.float32)
    if rng.uniform() < 0.5:
        image = image[:, ::-1]
        boxes = np.stack([1 - boxes[:, 2], boxes[:, 1], 1 - boxes[:, 0], boxes[:, 3]], axis=1)
    return np.ascontiguousarray(image), boxes.reshape(-1, 4), classes[keep]


def _canvas_region(image: np.ndarray, offset: np.ndarray, crop: tuple[int, int, int, int]) -> np.ndarray:
    """The `crop` of the mean-filled canvas with `image` at `offset`, without making the canvas
    (up to 16 times the image)."""
    x, y, w, h = crop
    out = np.empty((h, w, 3), np.float32)
    out[:] = MEAN
    left, top = max(x, offset[0]), max(y, offset[1])
    right = min(x + w, offset[0] + image.shape[1])
    bottom = min(y + h, offset[1] + image.shape[0])
    if right > left and bottom > top:
        out[top - y : bottom - y, left - x : right - x] = image[
            top - offset[1] : bottom - offset[1], left - offset[0] : right - offset[0]
        ]
    return out
