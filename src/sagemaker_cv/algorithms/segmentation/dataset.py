"""Semantic segmentation files: images and label PNGs paired by name, label maps, and every check
the data needs before training (framework-free).

An image `train/a/b.jpg` is labelled by `train_annotation/a/b.png`: the same path without its
suffix. Every file is decoded once here, so that a defect is reported before training starts,
with the file, the offending value and where it is:

* a mask pixel value that maps to no class (255 is "ignore"), a mask with several channels that
  differ, an image and mask of different sizes, an image without mask or a mask without image:
  ClientError;
* a file that is not a readable image (a README, a nested folder's listing, a corrupt JPEG):
  skipped with a warning, as the built-in does;
* a file that cannot be read at all (permissions, a FIFO, a symlink leaving the channel or looping,
  a directory that cannot be listed), or an image or mask larger than MAX_IMAGE_PIXELS (read from
  its header, before decoding): ClientError.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from sagemaker_cv.algorithms.segmentation.labels import (
    DEFAULT,
    LabelMap,
    LabelMapError,
    parse_label_map,
    single_channel,
)
from sagemaker_cv.contract import files
from sagemaker_cv.contract.errors import ClientError
from sagemaker_cv.inputs.images import Header, read_header

MAX_PROBLEMS = 12
LABEL_MAP_LIMIT = 1 << 20
#: Validation with validation_mini_batch_size=1 runs the network on each image at its own size.
#: MXNet 1.9.1's CPU 1x1 convolutions crash (SIGFPE) on some feature maps of 512x512 and more
#: (measured: the ResNet's first stage, at a quarter of the image's side, on 4096x2048 images),
#: and such an image needs about 0.8 KB per pixel to validate: images and masks may have at most
#: 2^22 pixels (2048x2048), which keeps every feature map below 512x512.
MAX_IMAGE_PIXELS = 1 << 22


class Unreadable(Exception):
    """Not an image this reader can decode."""


def decode_image(data: bytes | np.ndarray, name: str) -> np.ndarray:
    """RGB uint8 (H, W, 3) from an encoded image. EXIF orientation is ignored, as the mask has
    none to match it."""
    buffer = np.frombuffer(data, dtype=np.uint8) if isinstance(data, bytes) else data
    image = cv2.imdecode(buffer, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION) if buffer.size else None
    if image is None:
        raise Unreadable(name)
    return image[:, :, ::-1]


def read_image(path: Path) -> np.ndarray:
    return decode_image(np.fromfile(str(path), dtype=np.uint8), str(path))


def read_mask(path: Path) -> tuple[np.ndarray, str | None]:
    return decode_mask(path, str(path))


def decode_mask(source: Path | BinaryIO, name: str) -> tuple[np.ndarray, str | None]:
    """The pixel values of a label image (a file or a file object) as one 2-D array, and what is
    wrong with its channels.

    Palette (`P`) images give their palette indices, never colours. Alpha channels say nothing
    about classes and are dropped."""
    # Importing GluonCV's model zoo imports gluoncv.data, which turns on PIL's
    # LOAD_TRUNCATED_IMAGES for the whole process: a truncated mask would then decode as zeros
    # (class 0) without a word. Nothing here wants that, so every decode turns it off again.
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with Image.open(source) as img:
            img.load()
            mode = img.mode
            array = np.asarray(img)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise Unreadable(name) from exc
    if mode == "1":
        array = array.astype(np.uint8)
    elif mode.endswith("A") and array.ndim == 3:  # LA, PA, RGBA
        array = array[..., :-1]
        if array.shape[-1] == 1:
            array = array[..., 0]
    if array.dtype.kind == "f":
        if not np.all(np.isfinite(array)) or not np.all(array == np.round(array)):
            return array.astype(np.int64), "holds non-integer pixel values (mode F)"
        array = array.astype(np.int64)
    return single_channel(array)


def pixel_problem(header: Header | None) -> str | None:
    """Why an image or mask may not be decoded: its header declares more than MAX_IMAGE_PIXELS."""
    if header is None or header.pixels <= MAX_IMAGE_PIXELS:
        return None
    return (
        f"is {header.describe()}, more than the {MAX_IMAGE_PIXELS:,} pixels (2048x2048) an image or mask may "
        "have; downscale the image and its mask alike, or cut both into tiles"
    )


def mask_defect(
    values: np.ndarray, channel_problem: str | None, label_map: LabelMap, num_classes: int
) -> str | None:
    """What makes a decoded mask unusable (its channels, or the first pixel value that maps to no
    class), or None."""
    if channel_problem:
        return channel_problem
    _, bad = label_map.encode(values, num_classes)
    return bad.describe(label_map, num_classes) if bad else None


def size_mismatch(mask_size: tuple[int, ...], image_size: tuple[int, ...], image: str) -> str | None:
    """The image and its mask must have the same height and width."""
    if tuple(mask_size[:2]) == tuple(image_size[:2]):
        return None
    return (
        f"size {mask_size[0]}x{mask_size[1]} (height x width) differs from {image} "
        f"{image_size[0]}x{image_size[1]}"
    )


# ---- label maps ------------------------------------------------------------------------------


@dataclass(frozen=True)
class LabelMaps:
    train: LabelMap
    validation: LabelMap
    provided: tuple[str, ...] = ()  # the splits whose file was found
    notes: tuple[str, ...] = ()  # files ignored, for the log


def load_label_maps(directory: Path | None, num_classes: int) -> LabelMaps:
    """train_label_map.json / validation_label_map.json from the label_map channel. A split without
    its file uses the other split's map, or the default {"scale": 1} when there is none."""
    found: dict[str, LabelMap] = {}
    notes = []
    present, problems = (
        files.channel_files(directory, "label_map") if directory and directory.is_dir() else ([], [])
    )
    for path in present:
        split = {"train_label_map.json": "train", "validation_label_map.json": "validation"}.get(path.name)
        if split is None:
            notes.append(
                f"label_map/{path.name}: not train_label_map.json or validation_label_map.json; ignored"
            )
            continue
        name = f"label_map/{path.name}"
        try:
            # A BOM (Windows editors write one) is fine; a file over 1 MiB is no label map.
            found[split] = parse_label_map(files.read_json(path, name, limit=LABEL_MAP_LIMIT), num_classes)
        except ClientError as exc:
            problems.extend(exc.problems)
        except LabelMapError as exc:
            problems.append(f"label_map/{path.name}: {exc}")
    if problems:
        raise ClientError(problems)
    train = found.get("train") or found.get("validation") or DEFAULT
    validation = found.get("validation") or train
    return LabelMaps(train, validation, tuple(sorted(found)), tuple(notes))


# ---- one split ---------------------------------------------------------------------------------


@dataclass
class Split:
    """The usable (image, mask) pairs of one split, and the files skipped as unreadable."""

    name: str  # "train" | "validation"
    samples: list[tuple[Path, Path]]
    label_map: LabelMap
    skipped: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.samples)

    @property
    def source(self) -> str:  # for messages: the split's image channel
        return self.name

    @property
    def skipped_count(self) -> int:
        return len(self.skipped)


def _files(directory: Path, problems: list[str]) -> tuple[dict[str, list[Path]], files.Listing]:
    """Every file under `directory` by its relative path without suffix, and the listing; what
    cannot be read as a file (FIFOs, symlinks leaving the channel, directories that cannot be
    listed) goes to `problems`."""
    by_key: dict[str, list[Path]] = {}
    listing = files.list_channel(directory, directory.name) if directory.is_dir() else files.Listing()
    problems.extend(listing.problems)
    for path in listing.files:
        by_key.setdefault(path.relative_to(directory).with_suffix("").as_posix(), []).append(path)
    return by_key, listing


def _read(path: Path, name: str) -> bytes | str:
    """A file's bytes, or why it cannot be read or may not be decoded."""
    try:
        data = files.read_bytes(path, name)
    except ClientError as exc:
        return exc.problems[0]
    problem = pixel_problem(read_header(data))
    return f"{name}: {problem}" if problem else data


def _parallel(fn: Callable, items: Iterable, threads: int | None) -> list:
    # cv2 and PIL release the GIL while decoding: threads scale on every core.
    with ThreadPoolExecutor(max_workers=threads or os.cpu_count() or 1) as pool:
        return list(pool.map(fn, items))


def scan_split(
    name: str,
    image_dir: Path,
    mask_dir: Path,
    label_map: LabelMap,
    num_classes: int,
    threads: int | None = None,
) -> Split:
    """Pair, decode and check every file of one split; raise ClientError listing the defects."""
    problems: list[str] = []
    skipped: list[str] = []
    (images, image_listing), (masks, mask_listing) = _files(image_dir, problems), _files(mask_dir, problems)
    image_channel, mask_channel = image_dir.name, mask_dir.name

    def shown(path: Path, root: Path) -> str:
        return f"{root.name}/{path.relative_to(root).as_posix()}"

    for by_stem, root in ((images, image_dir), (masks, mask_dir)):
        for paths in by_stem.values():
            if len(paths) > 1:
                names = " and ".join(shown(p, root) for p in paths)
                problems.append(f"{names}: several files with the same name stem; keep one")

    # Each check returns its result, None for a file that is not an image (skipped), or a problem.
    def image_size(path: Path) -> tuple[int, int] | str | None:
        data = _read(path, shown(path, image_dir))
        if isinstance(data, str):
            return data
        try:
            return decode_image(data, str(path)).shape[:2]
        except Unreadable:
            return None

    def mask_check(path: Path) -> tuple[tuple[int, int], str | None] | str | None:
        data = _read(path, shown(path, mask_dir))
        if isinstance(data, str):
            return data
        try:
            values, channel_problem = decode_mask(io.BytesIO(data), str(path))
        except Unreadable:
            return None
        return values.shape[:2], mask_defect(values, channel_problem, label_map, num_classes)

    image_keys = [k for k, v in images.items() if len(v) == 1]
    mask_keys = [k for k, v in masks.items() if len(v) == 1]
    sizes = dict(zip(image_keys, _parallel(lambda k: image_size(images[k][0]), image_keys, threads)))
    checks = dict(zip(mask_keys, _parallel(lambda k: mask_check(masks[k][0]), mask_keys, threads)))
    for found in (sizes, checks):
        for key, result in list(found.items()):
            if isinstance(result, str):  # not read: named, and the file taken as absent
                problems.append(result)
                del found[key]

    samples = []
    for key in image_keys:
        image = images[key][0]
        if key not in sizes:
            continue
        if sizes[key] is None:
            skipped.append(shown(image, image_dir))
            continue
        if key not in masks:
            if mask_listing.withholds(key):
                continue  # its mask is named already (a FIFO, a symlink leaving the channel, ...)
            problems.append(
                f"{shown(image, image_dir)}: no label image {mask_channel}/{key}.png (same name, .png)"
            )
            continue
        mask, check = masks[key][0], checks.get(key)
        if check is None:
            continue  # a duplicate stem or an unreadable mask: reported with the masks
        mask_size, defect = check
        if defect:
            problems.append(f"{shown(mask, mask_dir)}: {defect}")
        elif mismatch := size_mismatch(mask_size, sizes[key], shown(image, image_dir)):
            problems.append(f"{shown(mask, mask_dir)}: {mismatch}")
        else:
            samples.append((image, mask))
    for key in mask_keys:
        mask = masks[key][0]
        if key not in checks:
            continue
        if checks[key] is None:
            skipped.append(shown(mask, mask_dir))
            if key in sizes and sizes[key] is not None:
                problems.append(
                    f"{shown(mask, mask_dir)}: not a readable image, so {shown(images[key][0], image_dir)} has no labels"
                )
        elif key not in images and not image_listing.withholds(key):
            problems.append(f"{shown(mask, mask_dir)}: no image with this name in {image_channel}")
    if problems:
        more = [f"... and {len(problems) - MAX_PROBLEMS} more"] if len(problems) > MAX_PROBLEMS else []
        raise ClientError(problems[:MAX_PROBLEMS] + more)
    return Split(name, samples, label_map, skipped)
