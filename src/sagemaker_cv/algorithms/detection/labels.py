"""Detection labels as users write them, checked and normalised: pure functions on plain data.

Several sources, one result. A RecordIO label vector (`im2rec --pack-label`) is
`[header_width, object_width, (extra header...), cls, xmin, ymin, xmax, ymax, (extra...), ...]` with
corners as fractions of the image; a JSON annotation gives pixel boxes `{class_id, left, top, width,
height}`, and COCO and Pascal VOC files (`coco`, `voc`) give `PixelBox`es too. All become `Objects`:
class ids and corners in [0, 1].

A box that sticks out of its image by a little (rounding, annotation tools) is clipped and counted;
one that is far outside, of zero area, or of an unknown class is a problem naming the object.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: How far (as a fraction of the image side) a box may stick out and still be clipped.
CLIP_TOLERANCE = 0.05
#: Corners beyond this are not ratios at all: most likely absolute pixel coordinates.
PIXEL_HINT = 2.0
#: The layout im2rec --pack-label writes and the one this package packs: header width 2, objects of 5.
HEADER = (2.0, 5.0)


@dataclass
class Objects:
    """The objects of one image: class ids and corners (xmin, ymin, xmax, ymax) in [0, 1]."""

    classes: np.ndarray  # (n,) int
    boxes: np.ndarray  # (n, 4) float32
    clipped: int = 0  # boxes that stuck out slightly and were clipped
    problems: list[str] = field(default_factory=list)
    padding: int = 0  # all -1 objects (label padding), dropped
    #: (n,) bool: objects kept out of validation mAP (VOC's difficult, COCO's crowd); None: none are
    difficult: np.ndarray | None = None

    @property
    def count(self) -> int:
        return len(self.classes)

    def label(self) -> np.ndarray:
        """The label vector this package packs: [2, 5, cls, xmin, ymin, xmax, ymax, ...]. An image
        without objects gets one invalid object (MXNet's detection iterator needs at least one; it
        drops boxes without area)."""
        if not self.count:
            return np.array([*HEADER, -1, 0, 0, 0, 0], dtype=np.float32)
        rows = np.concatenate([self.classes[:, None].astype(np.float32), self.boxes], axis=1)
        return np.concatenate([np.array(HEADER, dtype=np.float32), rows.ravel()])


def _is_index(value: float) -> bool:
    return math.isfinite(value) and value == int(value)


def _class_problem(value: float, num_classes: int) -> str | None:
    if not _is_index(value) or not 0 <= value < num_classes:
        return (
            f"class_id {value:g} is not a class index in [0, {num_classes - 1}] (num_classes={num_classes})"
        )
    return None


def _check_box(
    box: np.ndarray, pixels: tuple[float, float] | None
) -> tuple[np.ndarray | None, bool, str | None]:
    """Clip a normalised (xmin, ymin, xmax, ymax) box that sticks out slightly.

    Returns (box or None, clipped, problem). `pixels` (width, height) turns messages into pixels."""
    shown = _show_box(box, pixels)
    if not np.all(np.isfinite(box)):
        return None, False, f"box {shown} has a non-finite coordinate"
    if pixels is None and box.max() > PIXEL_HINT:
        return (
            None,
            False,
            f"box {shown} is not in [0, 1]: RecordIO corners are fractions of the image width and height "
            "(xmin/width, ymin/height, xmax/width, ymax/height); these look like absolute pixel coordinates",
        )
    if box.min() < -CLIP_TOLERANCE or box.max() > 1 + CLIP_TOLERANCE:
        where = "the image" if pixels else "[0, 1]"
        return None, False, f"box {shown} lies outside {where} by more than {CLIP_TOLERANCE:.0%} of the image"
    if box[2] <= box[0] or box[3] <= box[1]:
        return None, False, f"box {shown} has zero area (xmax must exceed xmin and ymax exceed ymin)"
    clipped = np.clip(box, 0.0, 1.0)
    changed = bool(np.any(clipped != box))
    if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
        return None, False, f"box {shown} has no area inside the image"
    return clipped.astype(np.float32), changed, None


def _show_box(box: np.ndarray, pixels: tuple[float, float] | None) -> str:
    if pixels is None:
        return "(" + ", ".join(f"{v:g}" for v in box) + ")"
    w, h = pixels
    left, top, right, bottom = box * np.array([w, h, w, h])
    return f"(left {left:g}, top {top:g}, width {right - left:g}, height {bottom - top:g})"


def _collect(items: list[tuple[str, float, np.ndarray, bool]], num_classes: int, pixels) -> Objects:
    """Objects from (name, class, normalised box, difficult); problems name the object."""
    classes, boxes, difficult, problems, clipped = [], [], [], [], 0
    for name, cls, box, hard in items:
        problem = _class_problem(cls, num_classes)
        if problem:
            problems.append(f"{name}: {problem}")
            continue
        fixed, was_clipped, problem = _check_box(box, pixels)
        if problem:
            problems.append(f"{name}: {problem}")
            continue
        classes.append(int(cls))
        boxes.append(fixed)
        difficult.append(hard)
        clipped += was_clipped
    return Objects(
        np.array(classes, dtype=np.int64),
        np.array(boxes, dtype=np.float32).reshape(-1, 4),
        clipped,
        problems,
        difficult=np.array(difficult, dtype=bool) if any(difficult) else None,
    )


@dataclass(frozen=True)
class PixelBox:
    """One object as an annotation file gives it: a class id and a box in pixels of the image."""

    name: str  # how messages name it: "object 2", "annotation id 17", "object 3 ('dog')"
    cls: float
    left: float
    top: float
    width: float
    height: float
    difficult: bool = False  # kept out of validation mAP


def pixel_objects(boxes: list[PixelBox], num_classes: int, image_size: tuple[int, int]) -> Objects:
    """Pixel boxes of an image of `image_size` (width, height) as decoded, checked and normalised."""
    width, height = image_size
    items = [
        (
            b.name,
            b.cls,
            np.array(
                [b.left / width, b.top / height, (b.left + b.width) / width, (b.top + b.height) / height]
            ),
            b.difficult,
        )
        for b in boxes
    ]
    return _collect(items, num_classes, (width, height))


@dataclass(frozen=True)
class Layout:
    """How one record's label vector is laid out."""

    header_width: int
    object_width: int
    length: int  # values in the vector, padding objects included

    def needed(self, objects: int) -> int:
        """label_width this record needs once its padding objects are dropped."""
        return self.header_width + self.object_width * objects


def parse_record_label(values: np.ndarray, num_classes: int) -> tuple[Objects, Layout | None]:
    """A packed RecordIO label vector, checked. Problems are in `Objects.problems`."""
    values = np.asarray(values, dtype=np.float64).ravel()
    fail = Objects(np.zeros(0, np.int64), np.zeros((0, 4), np.float32))
    if values.size < 2:
        fail.problems.append(
            f"label has {values.size} value(s), expected [header_width, object_width, objects...] as "
            "im2rec --pack-label writes it from a detection .lst"
        )
        return fail, None
    header, width = values[0], values[1]
    if not _is_index(header) or not 2 <= header <= values.size:
        fail.problems.append(
            f"header_width {header:g} (first label value) must be an integer in [2, {values.size}] "
            "(it counts itself, object_width and any extra header values)"
        )
        return fail, None
    if not _is_index(width) or width < 5:
        fail.problems.append(
            f"object_width {width:g} (second label value) must be an integer >= 5: class, xmin, ymin, xmax, ymax"
        )
        return fail, None
    header, width = int(header), int(width)
    rest = values[header:]
    if rest.size % width:
        fail.problems.append(
            f"{rest.size} value(s) after the {header}-value header do not make whole objects of "
            f"{width} values: the last object has only {rest.size % width} "
            "(each object is class, xmin, ymin, xmax, ymax)"
        )
        return fail, None
    rows = rest.reshape(-1, width)
    real = rows[~np.all(rows == -1, axis=1)]  # all -1: label padding, as MXNet's tools write it
    objects = _collect(
        [(f"object {i}", row[0], row[1:5], False) for i, row in enumerate(real)], num_classes, None
    )
    objects.padding = len(rows) - len(real)
    return objects, Layout(header, width, int(values.size))


#: the keys of the built-in's per-image JSON annotation
ANNOTATION_KEYS = ("file", "image_size", "annotations", "categories")


def parse_annotation(
    doc: Any, num_classes: int, image_size: tuple[int, int] | None
) -> tuple[Objects, str | None]:
    """One JSON annotation (the built-in's format), for an image of `image_size` (width, height) as
    decoded. Returns the objects and the `file` it names (or None)."""
    fail = Objects(np.zeros(0, np.int64), np.zeros((0, 4), np.float32))
    if not isinstance(doc, dict):
        fail.problems.append(f"expected a JSON object with 'annotations', got {type(doc).__name__}")
        return fail, None
    file = doc.get("file")
    if file is not None and not isinstance(file, str):
        fail.problems.append(f"'file' must be a string (the image's path in its channel), got {file!r:.80}")
        file = None
    size = declared_size(doc.get("image_size"))
    if isinstance(size, str):
        fail.problems.append(size)
        return fail, file
    boxes = annotation_boxes(doc)
    if isinstance(boxes, str):
        fail.problems.append(boxes)
        return fail, file
    if image_size is None:
        return fail, file
    width, height = image_size
    if size is not None and size != image_size:
        fail.problems.append(
            f"image_size says {size[0]}x{size[1]} (width x height) but the image is {width}x{height}; "
            "the boxes must be in the pixels of the image as stored"
        )
        return fail, file
    problems = [box for box in boxes if isinstance(box, str)]
    objects = pixel_objects([box for box in boxes if not isinstance(box, str)], num_classes, image_size)
    objects.problems = problems + objects.problems
    return objects, file


def annotation_boxes(doc: dict) -> list[PixelBox | str] | str:
    """The boxes of a per-image JSON annotation (a problem string for each malformed one), or why
    there are none to read. A missing 'annotations' list is an error, never "no objects": a typo
    there would otherwise train every image as background."""
    if "annotations" not in doc:
        unknown = [str(k) for k in doc if k not in ANNOTATION_KEYS]
        close = difflib.get_close_matches("annotations", unknown, n=1, cutoff=0.6)
        hint = f" (is {close[0]!r} a misspelling?)" if close else ""
        return (
            f"no 'annotations' list{hint}: each annotation lists its boxes under 'annotations' "
            '(an image without objects has "annotations": [])'
        )
    annotations = doc["annotations"]
    if not isinstance(annotations, list):
        return f"'annotations' must be a list of boxes, got {type(annotations).__name__}"
    boxes: list[PixelBox | str] = []
    for index, box in enumerate(annotations):
        parsed = _pixel_box(box)
        if isinstance(parsed, str):
            boxes.append(f"object {index}: {parsed}")
        else:
            boxes.append(PixelBox(f"object {index}", *parsed))
    return boxes


_BOX_KEYS = ("class_id", "left", "top", "width", "height")


def finite(value: Any) -> float | None:
    """A JSON number as a finite float; None for anything else (booleans, strings, NaN, infinities,
    integers too large for a float)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _pixel_box(box: Any) -> tuple[float, float, float, float, float] | str:
    if not isinstance(box, dict):
        return f"expected an object with {', '.join(_BOX_KEYS)}, got {box!r:.60}"
    missing = [k for k in _BOX_KEYS if k not in box]
    if missing:
        return f"missing {', '.join(missing)} (each box has {', '.join(_BOX_KEYS)} in pixels)"
    values = []
    for key in _BOX_KEYS:
        value, number = box[key], finite(box[key])
        if number is None:
            numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
            return f"{key}={value!r:.40} is not {'a finite' if numeric else 'a'} number"
        values.append(number)
    return tuple(values)  # type: ignore[return-value]


def declared_size(value: Any) -> tuple[int, int] | str | None:
    """(width, height) from `image_size: [{"width": W, "height": H, "depth": 3}]`, None if absent."""
    if value is None:
        return None
    entry = value[0] if isinstance(value, list) and value else value
    sizes = [finite(entry.get(k)) for k in ("width", "height")] if isinstance(entry, dict) else [None]
    if not all(v is not None and v >= 1 and v == int(v) for v in sizes):
        return f'image_size={value!r:.80}: expected [{{"width": W, "height": H, "depth": 3}}] with whole numbers of pixels'
    return int(sizes[0]), int(sizes[1])


def iterator_objects(row: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The objects in one label row of MXNet's detection iterator: `[4 values it adds (the last is the
    length of the record's label after augmentation), header_width, object_width, (extra header),
    objects..., padding -1]`. Returns (classes (n,), boxes (n, 4)) without padding and without the
    objects it marked invalid (class -1)."""
    header, width = int(row[4]), int(row[5])
    values = row[4 + header : 4 + int(row[3])]
    objects = values.reshape(-1, width)
    objects = objects[objects[:, 0] >= 0]
    return objects[:, 0].astype(np.int64), objects[:, 1:5].astype(np.float32)


def ground_truth(labels: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """A batch of iterator label rows as the SSD target generator takes them: boxes (B, M, 4) in
    pixels of the `scale`-sized network input and class ids (B, M, 1), padded with -1 (M >= 1)."""
    parsed = [iterator_objects(row) for row in labels]
    most = max(1, max(len(c) for c, _ in parsed))
    boxes = np.full((len(parsed), most, 4), -1, dtype=np.float32)
    ids = np.full((len(parsed), most, 1), -1, dtype=np.float32)
    for i, (classes, corners) in enumerate(parsed):
        boxes[i, : len(classes)] = corners * scale
        ids[i, : len(classes), 0] = classes
    return boxes, ids


def record_objects(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The objects of a checked record label `[header_width, object_width, (extra header),
    objects..., (padding)]`: classes (n,) and corners (n, 4) as fractions, without the objects
    MXNet's detection iterator drops (class -1, or no area: an image without objects is packed
    with one such object)."""
    header, width = int(values[0]), int(values[1])
    rows = np.asarray(values[header:], dtype=np.float32).reshape(-1, width)
    rows = rows[(rows[:, 0] >= 0) & (rows[:, 3] > rows[:, 1]) & (rows[:, 4] > rows[:, 2])]
    return rows[:, 0].astype(np.int64), rows[:, 1:5]
