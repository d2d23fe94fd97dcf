"""Image RecordIO for classification: scan and validate a channel's .rec files, or build one from
.lst files and their images, so that MXNet's threaded ImageRecordIter can read every input format.

A scan checks each record's labels against num_classes, decodes each image once to find the
undecodable ones (skipped and reported, as nothing else can be done with them) and images smaller
than the network input. It writes an index over the channel's files (for shuffling across them
and partitioning), and a cleaned copy only of a file in which some record had to be dropped.

Both paths stream: one record or image at a time, written as soon as it is checked, so memory
does not grow with the number or the size of the images.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import mxnet as mx
import numpy as np

from sagemaker_cv.contract.errors import ClientError
from sagemaker_cv.contract.files import full_disk_named, inside, open_regular
from sagemaker_cv.inputs.lst import IndexTracker, LstEntry, LstProblem, short_repr
from sagemaker_cv.inputs.recordio import (
    MAX_RECORD_BYTES,
    Problems,
    RecordWriter,
    Shard,
    copy_records,
    describe,
    joined_path,
    read_shards,
    unpack_image_record,
    write_index,
)

# Resized images larger than this cannot be decoded by the iterator's threads without exhausting
# memory (a resize of 100000 turns a 32 px image into 30 GB).
MAX_RESIZED_PIXELS = 1 << 25
NAMED_SKIPS = 12  # undecodable images named in messages; the rest are counted
PREPARING = "writing the prepared training data"


@dataclass(frozen=True)
class LabelRules:
    num_classes: int
    multi_label: bool
    image_shape: tuple[int, int, int]
    resize: int | None

    @property
    def label_width(self) -> int:
        return self.num_classes if self.multi_label else 1


@dataclass
class PreparedRecords:
    """A channel's validated records: the files to read (the user's, or cleaned copies) in
    order, how MXNet reads them as one, and an index over their concatenation."""

    channel: str
    source: str  # what the user gave: the .rec file(s) or the .lst, for messages
    files: tuple[Path, ...]
    path_imgrec: str
    idx: Path
    count: int
    skipped: list[str]  # the first NAMED_SKIPS undecodable images ("file record N (id X)")
    skipped_count: int = 0
    class_counts: np.ndarray | None = None  # positives per class (multi-label) or samples per class
    #: (smallest, largest) shorter side of the kept images as stored, before any resize
    shorter_sides: tuple[int, int] | None = None


def check_labels(labels: np.ndarray, rules: LabelRules) -> str | None:
    """Why a record's label vector is invalid for these rules, or None."""
    if rules.multi_label:
        if labels.size != rules.num_classes:
            return (
                f"has {labels.size} label(s), expected a multi-hot vector of num_classes={rules.num_classes} "
                "0/1 values (multi_label=1)"
            )
        if not np.all((labels == 0) | (labels == 1)):
            return f"multi-hot labels must be 0 or 1, got {short_repr(labels.tolist())}"
        return None
    if labels.size != 1:
        return f"has {labels.size} labels, expected one class index (or set multi_label=1)"
    value = float(labels[0])
    if not math.isfinite(value) or value != int(value) or not 0 <= value < rules.num_classes:
        return f"label {value:g} is not a class index in [0, {rules.num_classes - 1}] (num_classes={rules.num_classes})"
    return None


def check_size(image: np.ndarray, rules: LabelRules) -> str | None:
    """Why a decoded image cannot yield an image_shape crop, or None."""
    h, w = image.shape[:2]
    _, need_h, need_w = rules.image_shape
    if rules.resize:
        scale = rules.resize / min(h, w)
        h, w = int(round(h * scale)), int(round(w * scale))
        if h * w > MAX_RESIZED_PIXELS:
            return (
                f"image is {image.shape[0]}x{image.shape[1]}; resize={rules.resize} would make it {h}x{w} "
                f"(more than {MAX_RESIZED_PIXELS} pixels); lower resize"
            )
    if h < need_h or w < need_w:
        fix = "" if rules.resize else "; set resize or use larger images"
        what = f"{h}x{w} after resize={rules.resize}" if rules.resize else f"{h}x{w}"
        return f"image is {what} (height x width), smaller than image_shape {need_h}x{need_w}{fix}"
    return None


def _decode(buf: bytes, channels: int) -> np.ndarray | None:
    if not buf:
        return None
    flag = cv2.IMREAD_GRAYSCALE if channels == 1 else cv2.IMREAD_COLOR
    return cv2.imdecode(np.frombuffer(buf, dtype=np.uint8), flag)


KEPT, SKIPPED, REFUSED = "kept", "skipped", "refused"


class SampleChecks:
    """The per-sample checks both input formats share: labels, decoding, size. Collects the
    problems, the undecodable samples and the class counts."""

    def __init__(self, rules: LabelRules):
        self.rules = rules
        self.problems = Problems()
        self.skipped: list[str] = []
        self.skipped_count = 0
        self.kept = 0
        self.counts = np.zeros(rules.num_classes, dtype=np.int64)
        self.shorter_sides: tuple[int, int] | None = None

    def labels_ok(self, where: str, labels: np.ndarray) -> bool:
        problem = check_labels(labels, self.rules)
        if problem:
            self.problems.add(f"{where}: {problem}")
        return problem is None

    def image(self, where: str, labels: np.ndarray, buf: bytes) -> str:
        """KEPT (decodable and large enough; counted), SKIPPED (undecodable) or REFUSED (a problem).
        `where` names it in messages."""
        image = _decode(buf, self.rules.image_shape[0])
        if image is None:
            self.skipped_count += 1
            if len(self.skipped) < NAMED_SKIPS:
                self.skipped.append(where)
            return SKIPPED
        problem = check_size(image, self.rules)
        if problem:
            self.problems.add(f"{where}: {problem}")
            return REFUSED
        if self.rules.multi_label:
            self.counts += labels.astype(np.int64)
        else:
            self.counts[int(labels[0])] += 1
        side = min(image.shape[:2])
        low, high = self.shorter_sides or (side, side)
        self.shorter_sides = (min(low, side), max(high, side))
        self.kept += 1
        return KEPT

    def finish(self, empty: str) -> None:
        """Raise every problem found, or `empty` when no sample survived."""
        if self.problems:
            raise ClientError(self.problems.as_list())
        if not self.kept:
            raise ClientError(empty)

    def prepared(
        self, channel: str, source: str, files: tuple[Path, ...], path_imgrec: str, idx: Path
    ) -> PreparedRecords:
        """What the checks found, with the files that hold the kept samples."""
        return PreparedRecords(
            channel,
            source,
            files,
            path_imgrec,
            idx,
            self.kept,
            self.skipped,
            self.skipped_count,
            self.counts,
            self.shorter_sides,
        )


def scan_recordio(shards: Sequence[Shard], channel: str, rules: LabelRules, scratch: Path) -> PreparedRecords:
    """Validate every record of a channel's .rec files; raise ClientError listing what is wrong."""
    checks = SampleChecks(rules)
    drop: dict[Path, set[int]] = {}  # undecodable records, by file
    read = 0
    for shard, record in read_shards(shards):
        read += 1
        where = f"{shard.name} record {record.number}"
        unpacked = unpack_image_record(record.payload)
        if isinstance(unpacked, str):
            checks.problems.add(f"{where}: {unpacked}")
            continue
        record_id, labels, buf = unpacked
        where += f" (id {record_id})"
        if checks.labels_ok(where, labels) and checks.image(where, labels, buf) == SKIPPED:
            drop.setdefault(shard.path, set()).add(record.number)
    source = describe(shards, channel)
    checks.finish(
        f"{source}: none of its {read} record(s) holds a decodable image"
        if read
        else f"{source}: holds no records"
    )
    scratch.mkdir(parents=True, exist_ok=True)
    files = []
    for i, shard in enumerate(shards):
        if shard.path in drop:  # ImageRecordIter would abort on an undecodable image: read a cleaned copy
            cleaned = scratch / f"{channel}-{i:05d}.rec"
            with full_disk_named(cleaned, PREPARING):
                copy_records(shard.path, cleaned, drop[shard.path])
            files.append(cleaned)
        else:
            files.append(shard.path)
    idx = scratch / f"{channel}.idx"
    with full_disk_named(idx, PREPARING):
        write_index(idx, files)
    return checks.prepared(channel, source, tuple(files), joined_path(files, scratch), idx)


def read_image(image_dir: Path, entry: LstEntry, where: str, channel: str) -> bytes | str:
    """The bytes of a listed image, or why it cannot be used."""
    path = image_dir / entry.path
    if not inside(path, image_dir):
        return f"path {entry.path!r} resolves outside the {channel} channel"
    try:
        f = open_regular(path, f"image {entry.path!r}")
    except ClientError as exc:
        if not path.exists():
            return f"image {entry.path!r} not found in the {channel} channel"
        return exc.problems[0]
    with f:
        size = f.seek(0, 2)
        if size >= MAX_RECORD_BYTES:
            return (
                f"image {entry.path!r} is {size} bytes; RecordIO holds images below {MAX_RECORD_BYTES} bytes"
            )
        f.seek(0)
        try:
            return f.read()
        except OSError as exc:
            return f"image {entry.path!r} cannot be read ({exc.strerror})"


def pack_lst(
    items: Iterable[LstEntry | LstProblem],
    lst_name: str,
    image_dir: Path,
    channel: str,
    rules: LabelRules,
    scratch: Path,
) -> PreparedRecords:
    """Build a .rec from .lst lines and their images (the built-in's "Creating record files"
    step), one image at a time."""
    checks = SampleChecks(rules)
    indices = IndexTracker()
    listed = 0
    scratch.mkdir(parents=True, exist_ok=True)
    rec, idx = scratch / f"{channel}.rec", scratch / f"{channel}.idx"
    writer = RecordWriter(rec, idx)
    try:
        for item in items:
            if isinstance(item, LstProblem):
                checks.problems.add(item.text)
                continue
            listed += 1
            indices.add(item)
            where = f"{item.source}:{item.line}"
            labels = np.asarray(item.labels, dtype=np.float32)
            if not checks.labels_ok(where, labels):
                continue
            buf = read_image(image_dir, item, where, channel)
            if isinstance(buf, str):
                checks.problems.add(f"{where}: {buf}")
            elif checks.image(f"{where} ({item.path})", labels, buf) == KEPT and not checks.problems:
                # Once the job is bound to fail, checking goes on but nothing more is written.
                label = item.labels[0] if len(item.labels) == 1 else labels
                flag = 0 if len(item.labels) == 1 else len(item.labels)
                header = mx.recordio.IRHeader(flag, label, item.index, 0)
                with full_disk_named(rec, PREPARING):
                    writer.write(mx.recordio.pack(header, buf))
    finally:
        writer.close()
    repeated, total = indices.problems(limit=12)
    for problem in repeated:
        checks.problems.add(problem.text)
    checks.problems.extra += total - len(repeated)
    checks.finish(
        f"{lst_name}: none of its {listed} image(s) could be decoded"
        if listed
        else f"{lst_name}: lists no images"
    )
    return checks.prepared(channel, lst_name, (rec,), str(rec), idx)
