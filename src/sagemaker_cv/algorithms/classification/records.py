"""Image RecordIO files for classification: scan and validate them, or build them from a .lst and
its images, so that MXNet's threaded ImageRecordIter can read every input format.

A scan checks each record's labels against num_classes, decodes each image once to find the
undecodable ones (skipped and reported, as nothing else can be done with them) and images smaller
than the network input. It writes an index (for shuffling and partitioning) into a scratch
directory, and a cleaned copy of the file only when some record had to be dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import mxnet as mx
import numpy as np

from sagemaker_cv.contract.errors import ClientError
from sagemaker_cv.inputs.lst import LstEntry
from sagemaker_cv.inputs.recordio import Problems, copy_records, image_records, write_index


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
    """A validated .rec (the original or a cleaned copy) plus its index in the scratch dir."""

    channel: str
    source: str  # what the user gave: the .rec or the .lst, for messages
    rec: Path
    idx: Path
    count: int
    skipped: list[str] = field(default_factory=list)  # "file record N (id X)" of undecodable images
    class_counts: np.ndarray | None = None  # positives per class (multi-label) or samples per class


def check_labels(labels: np.ndarray, rules: LabelRules) -> str | None:
    """Why a record's label vector is invalid for these rules, or None."""
    if rules.multi_label:
        if labels.size != rules.num_classes:
            return (
                f"has {labels.size} label(s), expected a multi-hot vector of num_classes={rules.num_classes} "
                "0/1 values (multi_label=1)"
            )
        if not np.all((labels == 0) | (labels == 1)):
            return f"multi-hot labels must be 0 or 1, got {labels.tolist()}"
        return None
    if labels.size != 1:
        return f"has {labels.size} labels, expected one class index (or set multi_label=1)"
    value = float(labels[0])
    if value != int(value) or not 0 <= value < rules.num_classes:
        return f"label {value:g} is not a class index in [0, {rules.num_classes - 1}] (num_classes={rules.num_classes})"
    return None


def check_size(image: np.ndarray, rules: LabelRules) -> str | None:
    """Why a decoded image cannot yield an image_shape crop, or None."""
    h, w = image.shape[:2]
    _, need_h, need_w = rules.image_shape
    if rules.resize:
        scale = rules.resize / min(h, w)
        h, w = int(round(h * scale)), int(round(w * scale))
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


class SampleChecks:
    """The per-sample checks both input formats share: labels, decoding, size. Collects the
    problems, the undecodable samples and the class counts."""

    def __init__(self, rules: LabelRules):
        self.rules = rules
        self.problems = Problems()
        self.skipped: list[str] = []
        self.counts = np.zeros(rules.num_classes, dtype=np.int64)

    def labels_ok(self, where: str, labels: np.ndarray) -> bool:
        problem = check_labels(labels, self.rules)
        if problem:
            self.problems.add(f"{where}: {problem}")
        return problem is None

    def image_ok(self, where: str, labels: np.ndarray, buf: bytes) -> bool:
        """Decodable and large enough; counted when it is. `where` names it in messages."""
        image = _decode(buf, self.rules.image_shape[0])
        if image is None:
            self.skipped.append(where)
            return False
        problem = check_size(image, self.rules)
        if problem:
            self.problems.add(f"{where}: {problem}")
            return False
        if self.rules.multi_label:
            self.counts += labels.astype(np.int64)
        else:
            self.counts[int(labels[0])] += 1
        return True

    def finish(self, kept: int, empty: str) -> None:
        """Raise every problem found, or `empty` when no sample survived."""
        if self.problems.items:
            raise ClientError(self.problems.as_list())
        if not kept:
            raise ClientError(empty)


def _label_vector(header: mx.recordio.IRHeader) -> np.ndarray:
    return np.atleast_1d(np.asarray(header.label, dtype=np.float32))


def scan_recordio(path: Path, channel: str, rules: LabelRules, scratch: Path) -> PreparedRecords:
    """Validate every record of a user's .rec; raise ClientError listing what is wrong."""
    checks = SampleChecks(rules)
    keep: list[tuple[int, int]] = []  # (offset, record number) of good records
    name = f"{channel}/{path.name}"
    number = 0
    for item in image_records(path, name, checks.problems):
        number = item.record.number
        labels = _label_vector(item.header)
        if checks.labels_ok(item.where, labels) and checks.image_ok(item.where, labels, item.image):
            keep.append((item.record.offset, number))
    checks.finish(
        len(keep),
        f"{name}: none of its {number} record(s) holds a decodable image"
        if number
        else f"{name}: the file holds no records",
    )
    scratch.mkdir(parents=True, exist_ok=True)
    idx = scratch / f"{channel}.idx"
    rec = path
    if checks.skipped:  # ImageRecordIter would abort on an undecodable image: read from a cleaned copy
        rec = scratch / f"{channel}.rec"
        copy_records(path, rec, idx, {n for _, n in keep})
    else:
        write_index(idx, [offset for offset, _ in keep])
    return PreparedRecords(channel, name, rec, idx, len(keep), checks.skipped, checks.counts)


def pack_lst(
    entries: list[LstEntry], lst_name: str, image_dir: Path, channel: str, rules: LabelRules, scratch: Path
) -> PreparedRecords:
    """Build a .rec from a .lst and its images (the built-in's "Creating record files" step)."""

    checks = SampleChecks(rules)
    good: list[tuple[LstEntry, bytes]] = []
    root = image_dir.resolve()
    for entry in entries:
        where = f"{lst_name}:{entry.line}"
        labels = np.asarray(entry.labels, dtype=np.float32)
        if not checks.labels_ok(where, labels):
            continue
        path = (image_dir / entry.path).resolve()
        if root not in path.parents:  # a symlink pointing out of the channel
            checks.problems.add(f"{where}: path {entry.path!r} resolves outside the {channel} channel")
            continue
        try:
            buf = path.read_bytes()
        except FileNotFoundError:
            checks.problems.add(f"{where}: image {entry.path!r} not found in the {channel} channel")
            continue
        except OSError as exc:
            checks.problems.add(f"{where}: image {entry.path!r} cannot be read ({exc.strerror})")
            continue
        if checks.image_ok(f"{where} ({entry.path})", labels, buf):
            good.append((entry, buf))
    checks.finish(
        len(good),
        f"{lst_name}: none of its {len(entries)} image(s) could be decoded"
        if entries
        else f"{lst_name}: lists no images",
    )
    scratch.mkdir(parents=True, exist_ok=True)
    rec, idx = scratch / f"{channel}.rec", scratch / f"{channel}.idx"
    writer = mx.recordio.MXIndexedRecordIO(str(idx), str(rec), "w")
    try:
        for i, (entry, buf) in enumerate(good):
            label = entry.labels[0] if len(entry.labels) == 1 else np.asarray(entry.labels, dtype=np.float32)
            flag = 0 if len(entry.labels) == 1 else len(entry.labels)
            writer.write_idx(i, mx.recordio.pack(mx.recordio.IRHeader(flag, label, entry.index, 0), buf))
    finally:
        writer.close()
    return PreparedRecords(channel, lst_name, rec, idx, len(good), checks.skipped, checks.counts)
