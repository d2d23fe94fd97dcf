"""Image classification inputs: which channels hold what, and the iterators that read them.

Two formats, as the built-in: RecordIO (`train`, `validation` hold one or more .rec files each,
read as one dataset) and images with .lst files (`train` + `train_lst`, `validation` +
`validation_lst`). Both end as indexed RecordIO read by MXNet's ImageRecordIter, whose augmenters
are exactly the built-in's.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import mxnet as mx

from sagemaker_cv.algorithms.classification.channels import CHANNELS
from sagemaker_cv.algorithms.classification.records import (
    LabelRules,
    PreparedRecords,
    pack_lst,
    scan_recordio,
)
from sagemaker_cv.algorithms.classification.stream import resolve_streams
from sagemaker_cv.algorithms.record import unknown_channels
from sagemaker_cv.contract.config import Channel
from sagemaker_cv.contract.content_types import IMAGE_TYPES, RECORDIO
from sagemaker_cv.contract.errors import ClientError
from sagemaker_cv.contract.files import open_regular
from sagemaker_cv.contract.paths import MLPaths
from sagemaker_cv.inputs.lst import LstEntry, LstProblem, bounded_lines, iter_lst
from sagemaker_cv.inputs.recordio import Shard, find_shards

KNOWN_CHANNELS = tuple(c.name for c in CHANNELS)


@dataclass(frozen=True)
class Inputs:
    format: str  # "recordio" | "lst"
    train: tuple[
        Shard, ...
    ]  # the .rec files, or the .lst files, in reading order (empty when the split streams)
    validation: tuple[Shard, ...]  # empty: no validation channel, or it streams
    image_dirs: dict  # channel -> directory that .lst paths are relative to
    streams: dict = field(default_factory=dict)  # split -> stream.StreamSpec, for Pipe-mode channels


def resolve_inputs(channels: dict[str, Channel], paths: MLPaths, hp=None) -> Inputs:
    """Decide the input format and find the files; every problem in one ClientError."""
    problems = unknown_channels(channels, CHANNELS, "image classification")
    for name, ch in channels.items():
        if name == "model" or name not in KNOWN_CHANNELS:
            continue
        if ch.media_type and ch.media_type not in (RECORDIO, *IMAGE_TYPES):
            problems.append(
                f"channel {name!r} ContentType={ch.content_type!r}: expected {RECORDIO} or one of {', '.join(IMAGE_TYPES)}"
            )
    streams, stream_problems = resolve_streams(channels, hp or {})
    problems += stream_problems
    if "train" not in channels:
        problems.append("channel 'train' is missing: it holds the training .rec file or images")
    if problems:
        raise ClientError(problems)
    in_files = {k: v for k, v in channels.items() if k not in streams and k != "model"}
    if "train" in streams and "validation" not in in_files:
        return Inputs("recordio", (), (), {}, streams)
    # File-mode channels beside a streamed one (e.g. train in Pipe mode, validation in File mode).
    return replace(_resolve_files(in_files, paths), streams=streams)


def _resolve_files(channels: dict[str, Channel], paths: MLPaths) -> Inputs:
    problems: list[str] = []
    first = "train" if "train" in channels else "validation"  # validation alone: train streams
    media = channels[first].media_type
    lst = media in IMAGE_TYPES or (media is None and f"{first}_lst" in channels)
    if lst:
        return _resolve_lst(channels, paths)
    for name in ("train_lst", "validation_lst"):
        if name in channels:
            problems.append(
                f"channel {name!r}: only used with image content types, but 'train' is {RECORDIO}"
            )
    files = {}
    for name in ("train", "validation"):
        if name not in channels:
            continue
        try:
            files[name] = tuple(find_shards(paths.channel(name), name))
        except ClientError as exc:
            problems.extend(exc.problems)
            continue
        if not files[name]:
            problems.append(f"channel {name!r}: no .rec file in {paths.channel(name)}")
    if problems:
        raise ClientError(problems)
    return Inputs("recordio", files.get("train", ()), files.get("validation", ()), {})


def _resolve_lst(channels: dict[str, Channel], paths: MLPaths) -> Inputs:
    problems: list[str] = []
    if "validation" in channels and "validation_lst" not in channels:
        problems.append(
            "channel 'validation_lst' is missing: image input needs a .lst file for the validation images"
        )
    if "validation_lst" in channels and "validation" not in channels:
        problems.append("channel 'validation' is missing: it holds the images that validation_lst lists")
    if "train" in channels and "train_lst" not in channels:
        problems.append(
            "channel 'train_lst' is missing: image input needs a .lst file listing the training images"
        )
    lists = {}
    for name in ("train_lst", "validation_lst"):
        if name not in channels:
            continue
        directory = paths.channel(name)
        try:
            lists[name] = tuple(find_shards(directory, name, ".lst"))
        except ClientError as exc:
            problems.extend(exc.problems)
            continue
        if not lists[name]:
            problems.append(f"channel {name!r}: no .lst file in {directory}")
    for name in ("train", "validation"):
        if name in channels and not paths.channel(name).is_dir():
            problems.append(f"channel {name!r}: directory {paths.channel(name)} does not exist")
    if problems:
        raise ClientError(problems)
    return Inputs(
        "lst",
        lists.get("train_lst", ()),
        lists.get("validation_lst", ()),
        {"train": paths.channel("train"), "validation": paths.channel("validation")},
    )


def prepare(inputs: Inputs, split: str, rules: LabelRules, scratch: Path) -> PreparedRecords | None:
    """Validate one split's data and make it readable by ImageRecordIter (None: no such split,
    or it streams in Pipe mode and is checked as it arrives)."""
    files = inputs.train if split == "train" else inputs.validation
    if not files:
        return None
    if inputs.format == "recordio":
        return scan_recordio(files, split, rules, scratch)
    source = ", ".join(f.name for f in files)
    return pack_lst(
        lst_lines(files, rules.label_width), source, inputs.image_dirs[split], split, rules, scratch
    )


def lst_lines(files: tuple[Shard, ...], label_width: int) -> Iterator[LstEntry | LstProblem]:
    """The entries and problems of every .lst file of a channel, in order, read line by line."""
    for lst in files:
        with open_regular(lst.path, lst.name) as raw:
            # Undecodable bytes become U+FFFD: the path then names no image, which is reported.
            text = io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline=None)
            yield from iter_lst(bounded_lines(text.readline), lst.name, label_count=label_width)


AUGMENTATIONS = {
    None: {},
    "crop": {"rand_crop": True, "rand_mirror": True},
    "crop_color": {"rand_crop": True, "rand_mirror": True, "random_h": 36, "random_s": 50, "random_l": 50},
    "crop_color_transform": {
        "rand_crop": True,
        "rand_mirror": True,
        "random_h": 36,
        "random_s": 50,
        "random_l": 50,
        "max_rotate_angle": 10,
        "max_shear_ratio": 0.1,
        "max_aspect_ratio": 0.25,
    },
}


def record_iter(
    prepared: PreparedRecords,
    *,
    batch_size: int,
    rules: LabelRules,
    train: bool,
    augmentation: str | None = None,
    num_parts: int = 1,
    part_index: int = 0,
    seed: int = 0,
    threads: int | None = None,
    shuffle: bool | None = None,
) -> mx.io.ImageRecordIter:
    """ImageRecordIter yielding raw 0-255 RGB pixels (the network normalises its own input)."""
    kwargs = dict(AUGMENTATIONS[augmentation] if train else {})
    if rules.resize:
        kwargs["resize"] = rules.resize
    if num_parts > 1 or (train and len(prepared.files) > 1):
        # Exact record-count partitions need the index (without one, parts are byte ranges), and
        # so does shuffling across several files. Reading through the index costs random access,
        # so a single worker on one file goes sequentially (ImageRecordIter still shuffles within
        # its read chunks every epoch).
        kwargs["path_imgidx"] = str(prepared.idx)
    return mx.io.ImageRecordIter(
        path_imgrec=prepared.path_imgrec,
        data_shape=rules.image_shape,
        label_width=rules.label_width,
        batch_size=batch_size,
        shuffle=train if shuffle is None else shuffle,
        round_batch=train,  # validation must see each sample once; the pad is dropped from metrics
        num_parts=num_parts,
        part_index=part_index,
        seed=seed,
        seed_aug=seed if train else None,
        # Never fewer decoding threads than MXNet's default (4): measured faster even on 2 cores.
        preprocess_threads=threads or max(4, os.cpu_count() or 1),
        # An iterator is made per pass (its seed then depends on the epoch only) and per Pipe-mode
        # chunk. MXNet 1.9.1 leaks the prefetch buffers beyond the first of every iterator it frees
        # (~9 MB each at 32x3x64x64, measured); with one buffer nothing leaks, and images/s are the
        # same (decoding runs on preprocess_threads either way).
        prefetch_buffer=1,
        verbose=False,
        **kwargs,
    )
