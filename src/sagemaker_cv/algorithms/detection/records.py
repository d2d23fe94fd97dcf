"""Detection RecordIO files: users' .rec files checked record by record, so that MXNet's threaded
detection iterator reads them (images with annotations are packed into one by `annotated`).

A scan checks each record's label (`labels.parse_record_label`), sizes each image from its header
(refused above MAX_IMAGE_PIXELS, before anything is decoded) and decodes it once to find the
undecodable ones (skipped and reported: nothing else can be done with them). The user's file
is read in place unless a record had to change: then a cleaned copy goes to the scratch directory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import mxnet as mx
import numpy as np

from sagemaker_cv.algorithms.detection.labels import Objects, parse_record_label
from sagemaker_cv.contract.errors import ClientError
from sagemaker_cv.contract.files import full_disk_named
from sagemaker_cv.inputs.images import cap_problem, read_header
from sagemaker_cv.inputs.recordio import Problems, Shard, describe, frame, read_shards, unpack_image_record

#: Images are decoded whole before MXNet's iterator resizes them to image_shape, in four threads or
#: more, onto zoom-out canvases up to 4x the side: 2^25 pixels (a 5792x5792 or 8000x4000 photo; the
#: cap classification has for resized images) measured 0.9 GB peak for the training iterator,
#: where one 20000x20000 PNG took 5.3 GB. Larger images are refused before decoding.
MAX_IMAGE_PIXELS = 1 << 25
PREPARING = "writing the prepared training data"


@dataclass
class PreparedDetection:
    """A validated .rec (the original or a cleaned copy) that the detection iterator can read."""

    channel: str
    source: str  # what the user gave, for messages
    rec: Path
    count: int
    skipped: list[str] = field(default_factory=list)  # undecodable images, by record or file
    clipped: int = 0  # boxes clipped to their image
    empty: int = 0  # images without objects
    #: record id -> (n,) bool: its objects kept out of validation mAP (VOC difficult, COCO crowd)
    difficult: dict[int, np.ndarray] = field(default_factory=dict)
    objects: int = 0  # objects of all images (difficult ones too)

    @property
    def counted_objects(self) -> int:
        """The objects validation's mAP counts: all but the difficult ones."""
        return self.objects - sum(int(flags.sum()) for flags in self.difficult.values())

    @property
    def skipped_count(self) -> int:
        return len(self.skipped)


def image_size(buf: bytes) -> tuple[int, int] | None:
    """(width, height) of an encoded image, or None when it cannot be decoded. Call only on
    images whose header passed `pixel_problem`."""
    if not buf:
        return None
    image = cv2.imdecode(np.frombuffer(buf, dtype=np.uint8), cv2.IMREAD_COLOR)
    return None if image is None else (image.shape[1], image.shape[0])


def pixel_problem(buf: bytes) -> str | None:
    """Why an encoded image may not be decoded (its header declares more than MAX_IMAGE_PIXELS)."""
    return cap_problem(
        read_header(buf),
        MAX_IMAGE_PIXELS,
        "object detection resizes every image to image_shape, so downscale it (its boxes with it) first",
    )


def checked_size(buf: bytes, name: str, checks: RecordChecks) -> tuple[int, int] | None:
    """(width, height) of an image that passes the pixel cap and decodes; None after adding the
    problem (too large) or the skip (undecodable) to `checks`."""
    problem = pixel_problem(buf)
    if problem:
        checks.problems.add(f"{name}: {problem}")
        return None
    size = image_size(buf)
    if size is None:
        checks.skipped.append(name)
    return size


class RecordChecks:
    """Problems, skipped images and counts gathered over one channel."""

    def __init__(self, channel: str, label_width: int):
        self.channel, self.label_width = channel, label_width
        self.problems = Problems()
        self.skipped: list[str] = []
        self.clipped = self.empty = self.objects = 0

    def objects_ok(self, where: str, objects: Objects) -> bool:
        for problem in objects.problems:  # "... record 3 object 1: ...", "... record 3: ..."
            self.problems.add(f"{where}{' ' if problem.startswith('object ') else ': '}{problem}")
        return not objects.problems

    def width_ok(self, where: str, needed: int, objects: int) -> bool:
        if needed > self.label_width:
            self.problems.add(
                f"{where}: its {objects} object(s) need label_width >= {needed}, but label_width="
                f"{self.label_width}; set label_width to at least the widest label"
            )
            return False
        return True

    def count(self, objects: Objects) -> None:
        self.clipped += objects.clipped
        self.empty += objects.count == 0
        self.objects += objects.count

    def finish(self, kept: int, source: str, total: int) -> None:
        if self.problems.items:
            raise ClientError(self.problems.as_list())
        if not kept:
            raise ClientError(
                f"{source}: none of its {total} image(s) could be decoded"
                if total
                else f"{source}: holds no images"
            )


def pack(label: np.ndarray, record_id: int, image: bytes) -> bytes:
    return mx.recordio.pack(mx.recordio.IRHeader(len(label), label, record_id, 0), image)


@dataclass(frozen=True)
class CheckedRecord:
    where: str  # "<file> record N (id X)"
    record_id: int
    objects: Objects
    new_label: np.ndarray | None  # the label to write instead of the record's, when it must change
    image: bytes

    def payload(self, original: bytes) -> bytes:
        return original if self.new_label is None else pack(self.new_label, self.record_id, self.image)


def check_record(checks: RecordChecks, where: str, payload: bytes, num_classes: int) -> CheckedRecord | None:
    """An image record's label checked (None: its problems went to `checks`)."""
    unpacked = unpack_image_record(payload)
    if isinstance(unpacked, str):
        checks.problems.add(f"{where}: {unpacked}")
        return None
    record_id, label, image = unpacked
    where = f"{where} (id {record_id})"
    objects, layout = parse_record_label(label, num_classes)
    if not checks.objects_ok(where, objects) or not checks.width_ok(
        where, layout.needed(objects.count), objects.count
    ):
        return None
    # MXNet's iterator needs at least one object and at most label_width values: rewrite records
    # that have none, carry padding beyond label_width, or had boxes clipped.
    problem = pixel_problem(image)
    if problem:
        checks.problems.add(f"{where}: {problem}")
        return None
    rewrite = objects.clipped or not objects.count or layout.length > checks.label_width
    return CheckedRecord(where, record_id, objects, objects.label() if rewrite else None, image)


def scan_recordio(
    shards: tuple[Shard, ...], channel: str, num_classes: int, label_width: int, scratch: Path
) -> PreparedDetection:
    """Check every record of a channel's .rec files (in this order); raise ClientError listing what
    is wrong. Records are rewritten (in a copy) only when their label had to change; several files
    are copied into one (the detection iterator reads one file)."""
    checks = RecordChecks(channel, label_width)
    kept: dict[tuple[str, int], np.ndarray | None] = {}  # (file, record number) -> new label or None
    total = 0
    for shard, record in read_shards(shards):
        total += 1
        checked = check_record(checks, f"{shard.name} record {record.number}", record.payload, num_classes)
        if checked is None:
            continue
        if image_size(checked.image) is None:
            checks.skipped.append(checked.where)
            continue
        checks.count(checked.objects)
        kept[(shard.name, record.number)] = checked.new_label
    source = describe(shards, channel)
    checks.finish(len(kept), source, total)
    prepared = PreparedDetection(
        channel,
        source,
        shards[0].path,
        len(kept),
        checks.skipped,
        checks.clipped,
        checks.empty,
        objects=checks.objects,
    )
    if len(shards) == 1 and len(kept) == total and all(label is None for label in kept.values()):
        return prepared
    prepared.rec = scratch / f"{channel}.rec"
    _copy(shards, kept, prepared.rec)
    return prepared


def _copy(shards: tuple[Shard, ...], kept: dict[tuple[str, int], np.ndarray | None], dst: Path) -> None:
    """Write the kept records into one file, with their new labels where they have one."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    with full_disk_named(dst, PREPARING), open(dst, "wb") as out:
        for shard, record in read_shards(shards):
            key = (shard.name, record.number)
            if key not in kept:
                continue
            label = kept[key]
            if label is None:
                out.write(frame(record.payload))
            else:
                record_id, _, buf = unpack_image_record(record.payload)
                out.write(frame(pack(label, record_id, buf)))
