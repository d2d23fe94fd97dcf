"""Object detection inputs: which channels hold what, and the iterators that read them.

The built-in's two formats: RecordIO (`train`, `validation` hold one or more .rec files each, made
by `im2rec --pack-label`) and images with one JSON annotation each (`train` + `train_annotation`,
`validation` + `validation_annotation`); in the same image and annotation channels also a COCO
instances file or Pascal VOC XML (`annotated`). All end as one checked .rec per split. Training
reads it with `loader` (decoding and GluonCV's SSD augmentation in a thread pool, off the training
loop, which matters on CPUs where they cost as much as a network step); validation with MXNet's
threaded ImageDetRecordIter, the built-in's own reader.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import mxnet as mx
import numpy as np

from sagemaker_cv.algorithms.detection import classes
from sagemaker_cv.algorithms.detection.annotated import AnnotatedImages
from sagemaker_cv.algorithms.detection.channels import CHANNELS
from sagemaker_cv.algorithms.detection.loader import training_batches
from sagemaker_cv.algorithms.detection.records import PreparedDetection, scan_recordio
from sagemaker_cv.algorithms.detection.stream import StreamSpec, resolve_streams
from sagemaker_cv.algorithms.record import unknown_channels
from sagemaker_cv.contract.config import Channel
from sagemaker_cv.contract.content_types import IMAGE_TYPES, JSON, RECORDIO, XML_TYPES
from sagemaker_cv.contract.errors import ClientError
from sagemaker_cv.contract.files import write_text_atomic
from sagemaker_cv.contract.paths import MLPaths
from sagemaker_cv.inputs.recordio import Shard, find_shards

KNOWN_CHANNELS = tuple(c.name for c in CHANNELS)
SPLITS = ("train", "validation")


@dataclass(frozen=True)
class Inputs:
    format: str  # "recordio" | "images"
    recordio: dict[str, tuple[Shard, ...]] = field(default_factory=dict)  # split -> its .rec files
    images: dict[str, tuple[Path, Path]] = field(default_factory=dict)  # split -> (images, annotations)
    streams: dict[str, StreamSpec] = field(default_factory=dict)  # split -> its Pipe-mode channel
    annotated: AnnotatedImages | None = None  # format "images": both splits' annotations, read once


def resolve_inputs(channels: dict[str, Channel], paths: MLPaths) -> Inputs:
    """Decide the input format and find the files; every problem in one ClientError."""
    problems = unknown_channels(channels, CHANNELS, "object detection")
    for name, ch in channels.items():
        if name == "model" or name not in KNOWN_CHANNELS:
            continue
        allowed = (RECORDIO, *IMAGE_TYPES) if name in SPLITS else (*IMAGE_TYPES, JSON, *XML_TYPES)
        if ch.media_type and ch.media_type not in allowed:
            problems.append(
                f"channel {name!r} ContentType={ch.content_type!r}: expected one of {', '.join(allowed)}"
            )
    for split in SPLITS:
        if split not in channels:
            problems.append(
                f"channel {split!r} is missing: object detection needs {' and '.join(SPLITS)} "
                "(a .rec file each, or images with train_annotation and validation_annotation)"
            )
    streams, stream_problems = resolve_streams(channels)
    problems += stream_problems
    train = channels.get("train")
    media = train.media_type if train else None
    if "train" not in streams and (
        media in IMAGE_TYPES or (media is None and "train_annotation" in channels)
    ):
        if streams:
            problems.append(
                "channel 'validation' streams RecordIO in Pipe mode but 'train' holds images: give both "
                "splits in one format"
            )
        images = _image_channels(channels, paths, problems)
        inputs = Inputs("images", images=images, annotated=AnnotatedImages(images))
    else:
        for split in SPLITS:
            if f"{split}_annotation" in channels:
                problems.append(
                    f"channel '{split}_annotation': only used with image content types, but 'train' is {RECORDIO}"
                )
        inputs = Inputs(
            "recordio",
            recordio={
                s: _rec_files(s, paths, problems) for s in SPLITS if s in channels and s not in streams
            },
            streams=streams,
        )
    if problems:
        raise ClientError(problems)
    return inputs


def _rec_files(split: str, paths: MLPaths, problems: list[str]) -> tuple[Shard, ...]:
    try:
        found = tuple(find_shards(paths.channel(split), split))
    except ClientError as exc:
        problems.extend(exc.problems)
        return ()
    if not found:
        problems.append(f"channel {split!r}: no .rec file in {paths.channel(split)}")
    return found


def _image_channels(channels: dict[str, Channel], paths: MLPaths, problems: list[str]) -> dict:
    found = {}
    for split in SPLITS:
        annotation = f"{split}_annotation"
        if annotation not in channels:
            problems.append(
                f"channel {annotation!r} is missing: image input needs the {split} images' annotations (one "
                "JSON per image, a COCO instances file or VOC XML)"
            )
        for name in (split, annotation):
            if name in channels and not paths.channel(name).is_dir():
                problems.append(f"channel {name!r}: directory {paths.channel(name)} does not exist")
        found[split] = (paths.channel(split), paths.channel(annotation))
    return found


def prepare(
    inputs: Inputs, split: str, num_classes: int, label_width: int, scratch: Path
) -> PreparedDetection:
    """Validate one split's data and make it readable by the detection iterator."""
    if inputs.format == "recordio":
        return scan_recordio(list(inputs.recordio[split]), split, num_classes, label_width, scratch)
    return inputs.annotated.prepare(split, num_classes, label_width, scratch)


#: what a split without objects looks like in each format, for the message that refuses it
NO_OBJECTS = {
    "recordio": "every record's label lists no object",
    "json": "every annotation's 'annotations' list is empty",
    "coco": (
        "no entry of the COCO file's 'annotations' has the image_id of one of its images, or every "
        "one is a crowd (iscrowd=1)"
    ),
    "voc": "no XML file holds an <object> element",
}


def objects_problem(inputs: Inputs, prepared: PreparedDetection, split: str) -> str | None:
    """Why a split without objects is refused: training would learn that nothing is ever there
    (every image background, the loss soon near 0), and validation's mAP, averaged over the classes
    that have objects, is undefined without any (it would read 0 for any model, also to
    automatic model tuning and early stopping)."""
    annotated = inputs.annotated.sources if inputs.annotated and inputs.annotated.sources else {}
    form = annotated[split].format if split in annotated else "recordio"
    found = f"found {prepared.count} image(s) and no object ({NO_OBJECTS.get(form, 'no image has one')})"
    if split == "train" and prepared.objects == 0:
        return (
            f"{prepared.source}: {found}; training on it would teach the detector that nothing is ever "
            "there: annotate the objects to detect"
        )
    if split == "validation" and prepared.counted_objects == 0:
        if prepared.objects:
            found = (
                f"found {prepared.count} image(s) whose {prepared.objects} object(s) are all difficult or "
                "crowds, which mAP does not count"
            )
        return (
            f"{prepared.source}: {found}; validation mAP is undefined without objects (it is averaged over "
            "the classes that have some): give validation images with annotated objects"
        )
    return None


def write_class_map(class_map: classes.ClassMap | None, model_dir: Path) -> list[Path]:
    """class_map.json in the model directory when the classes have names: the annotations' (COCO,
    VOC), or those of the model incremental training started from (its class ids are kept)."""
    if class_map is None:
        return []
    path = model_dir / classes.FILE
    write_text_atomic(path, class_map.text())
    return [path]


def difficult_flags(prepared, batch, keep: int, width: int) -> np.ndarray | None:
    """(keep, width) bool: which ground-truth objects of a validation batch (as `labels.ground_truth`
    lays them out) stay out of mAP, found by record id (the batch's index); None when none do."""
    flagged = getattr(prepared, "difficult", None)
    if not flagged:
        return None
    flags = np.zeros((keep, width), dtype=bool)
    for row, record_id in enumerate(batch.index[:keep]):
        found = flagged.get(int(record_id))
        if found is not None:
            flags[row, : len(found)] = found
    return flags


def det_iter(
    prepared: PreparedDetection,
    *,
    batch_size: int,
    image_shape: int,
    label_width: int,
    train: bool,
    num_parts: int = 1,
    part_index: int = 0,
    seed: int = 0,
    threads: int | None = None,
    shuffle: bool | None = None,
):
    """Batches of raw 0-255 RGB pixels resized to image_shape x image_shape (the network
    normalises its own input) with labels padded to label_width, as the built-in pads them.

    Training passes are augmented as GluonCV's SSD recipe augments (`loader`, `augment`), freshly
    for every `seed`; validation reads with MXNet's ImageDetRecordIter, unaugmented, in order."""
    if train:
        return training_batches(
            prepared.rec,
            batch_size=batch_size,
            image_shape=image_shape,
            label_width=label_width,
            seed=seed,
            num_parts=num_parts,
            part_index=part_index,
            shuffle=True if shuffle is None else shuffle,
            threads=threads,
        )
    return mx.io.ImageDetRecordIter(
        path_imgrec=str(prepared.rec),
        data_shape=(3, image_shape, image_shape),
        batch_size=batch_size,
        label_pad_width=label_width,
        shuffle=False,
        round_batch=False,  # validation sees each image once; the last batch reports its pad
        num_parts=num_parts,
        part_index=part_index,
        # Never fewer decoding threads than MXNet's default (4): measured faster even on 2 cores.
        preprocess_threads=threads or max(4, os.cpu_count() or 1),
        # A new iterator is made per pass: MXNet 1.9.1 leaks the prefetch buffers beyond the first
        # of every iterator it frees (see classification's record_iter).
        prefetch_buffer=1,
        verbose=True,  # logs `ImageDetRecordIOParser: ..., label padding width: N`, as the built-in
        inter_method=1,
    )
