"""Detection RecordIO files: users' .rec files checked record by record, and images with JSON
annotations packed into one, so that MXNet's threaded detection iterator reads every input format.

A scan checks each record's label (`labels.parse_record_label`) and decodes each image once to find
the undecodable ones (skipped and reported: nothing else can be done with them). The user's file
is read in place unless a record had to change: then a cleaned copy goes to the scratch directory.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import mxnet as mx
import numpy as np

from sagemaker_cv.algorithms.detection.labels import Objects, parse_annotation, parse_record_label
from sagemaker_cv.contract.errors import ClientError
from sagemaker_cv.inputs.recordio import Problems, Shard, describe, read_shards, unpack_image_record

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


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


def image_size(buf: bytes) -> tuple[int, int] | None:
    """(width, height) of an encoded image, or None when it cannot be decoded."""
    if not buf:
        return None
    image = cv2.imdecode(np.frombuffer(buf, dtype=np.uint8), cv2.IMREAD_COLOR)
    return None if image is None else (image.shape[1], image.shape[0])


class RecordChecks:
    """Problems, skipped images and counts gathered over one channel."""

    def __init__(self, channel: str, label_width: int):
        self.channel, self.label_width = channel, label_width
        self.problems = Problems()
        self.skipped: list[str] = []
        self.clipped = self.empty = 0

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

    def finish(self, kept: int, source: str, total: int) -> None:
        if self.problems.items:
            raise ClientError(self.problems.as_list())
        if not kept:
            raise ClientError(
                f"{source}: none of its {total} image(s) could be decoded"
                if total
                else f"{source}: holds no images"
            )


def _pack(label: np.ndarray, record_id: int, image: bytes) -> bytes:
    return mx.recordio.pack(mx.recordio.IRHeader(len(label), label, record_id, 0), image)


@dataclass(frozen=True)
class CheckedRecord:
    where: str  # "<file> record N (id X)"
    record_id: int
    objects: Objects
    new_label: np.ndarray | None  # the label to write instead of the record's, when it must change
    image: bytes

    def payload(self, original: bytes) -> bytes:
        return original if self.new_label is None else _pack(self.new_label, self.record_id, self.image)


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
        channel, source, shards[0].path, len(kept), checks.skipped, checks.clipped, checks.empty
    )
    if len(shards) == 1 and len(kept) == total and all(label is None for label in kept.values()):
        return prepared
    prepared.rec = scratch / f"{channel}.rec"
    _copy(shards, kept, prepared.rec)
    return prepared


def _copy(shards: tuple[Shard, ...], kept: dict[tuple[str, int], np.ndarray | None], dst: Path) -> None:
    """Write the kept records into one file, with their new labels where they have one."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    writer = mx.recordio.MXRecordIO(str(dst), "w")
    try:
        for shard, record in read_shards(shards):
            key = (shard.name, record.number)
            if key not in kept:
                continue
            label = kept[key]
            if label is None:
                writer.write(record.payload)
            else:
                record_id, _, buf = unpack_image_record(record.payload)
                writer.write(_pack(label, record_id, buf))
    finally:
        writer.close()


# ---- images + JSON ---------------------------------------------------------------------------------


def find_images(directory: Path) -> list[Path]:
    """Every image under a channel directory, by path."""
    return sorted(p for p in directory.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _read_json(path: Path) -> tuple[object, str | None]:
    try:
        return json.loads(path.read_text(encoding="utf-8")), None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"is not valid JSON ({exc})"


class _ImageIndex:
    """The images of a channel, looked up by path (the annotation's `file`) or by stem."""

    def __init__(self, directory: Path):
        self.root = directory.resolve()
        self.images = find_images(directory)
        self.by_stem: dict[str, list[Path]] = {}
        for image in self.images:
            self.by_stem.setdefault(image.stem, []).append(image)

    def find(self, annotation: Path, annotation_dir: Path, file: str | None) -> Path | str:
        """The image an annotation belongs to, or why none can be found."""
        if file:
            candidate = (self.root / file).resolve()
            if candidate.is_file() and self.root in candidate.parents:
                return candidate
        stem = Path(file).stem if file else annotation.stem
        matches = self.by_stem.get(stem, [])
        if len(matches) > 1:  # prefer the image in the folder that mirrors the annotation's
            relative = annotation.parent.relative_to(annotation_dir)
            matches = [m for m in matches if m.parent.relative_to(self.root) == relative] or matches
        if len(matches) == 1:
            return matches[0].resolve()
        if matches:
            return f"several images are named {stem}.*: " + ", ".join(
                str(m.relative_to(self.root)) for m in matches
            )
        named = f"'file' {file!r} is not in the channel and no" if file else "no"
        return f"{named} image named {stem}.jpg/.jpeg/.png was found"


def pack_annotated_images(
    image_dir: Path, annotation_dir: Path, channel: str, num_classes: int, label_width: int, scratch: Path
) -> PreparedDetection:
    """Pair each JSON annotation with its image, check both, and pack them into one .rec."""
    annotation_channel = f"{channel}_annotation"
    checks = RecordChecks(channel, label_width)
    index = _ImageIndex(image_dir)
    used: set[Path] = set()
    good: list[tuple[Objects, Path]] = []
    annotations = sorted(p for p in annotation_dir.rglob("*.json") if p.is_file())
    for path in annotations:
        where = f"{annotation_channel}/{path.relative_to(annotation_dir)}"
        doc, problem = _read_json(path)
        if problem:
            checks.problems.add(f"{where}: {problem}")
            continue
        file = doc.get("file") if isinstance(doc, dict) and isinstance(doc.get("file"), str) else None
        image = index.find(path, annotation_dir, file)
        if isinstance(image, str):
            checks.problems.add(f"{where}: annotation without image in the {channel} channel: {image}")
            continue
        if image in used:
            checks.problems.add(f"{where}: image {image.relative_to(index.root)} is annotated twice")
            continue
        used.add(image)
        size = image_size(image.read_bytes())
        if size is None:
            checks.skipped.append(f"{channel}/{image.relative_to(index.root)}")
            continue
        objects, _ = parse_annotation(doc, num_classes, size)
        if not checks.objects_ok(f"{where}", objects) or not checks.width_ok(
            where, len(objects.label()), objects.count
        ):
            continue
        checks.count(objects)
        good.append((objects, image))
    for image in index.images:
        if image.resolve() not in used:
            checks.problems.add(
                f"{channel}/{image.relative_to(image_dir)}: image without annotation: add "
                f'{annotation_channel}/{image.stem}.json (an image without objects has "annotations": [])'
            )
    source = f"{channel} + {annotation_channel}"
    checks.finish(len(good), source, len(annotations))
    rec = scratch / f"{channel}.rec"
    rec.parent.mkdir(parents=True, exist_ok=True)
    writer = mx.recordio.MXRecordIO(str(rec), "w")
    try:
        for i, (objects, image) in enumerate(good):
            writer.write(_pack(objects.label(), i, image.read_bytes()))
    finally:
        writer.close()
    return PreparedDetection(channel, source, rec, len(good), checks.skipped, checks.clipped, checks.empty)
