"""COCO instances files (`instances_train2017.json`): one JSON file per annotation channel with
`images`, `annotations` and `categories`. Pure functions on the decoded document.

* `bbox` is [x, y, width, height] in pixels of the image; `category_id` any integer of
  `categories` (class ids are the categories in ascending id, `classes.coco_classes`);
* `iscrowd: 1` marks a box around a crowd: left out of training, as COCO's own recipes do, and
  kept out of validation mAP (a detection on a crowd counts neither way), as COCO's evaluation does;
* `segmentation` is never read: `drop_segmentation` removes it while the file is decoded, so
  polygons (most of a COCO file's bytes) never sit in memory all at once.

Every defect names the file and the image id or annotation id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sagemaker_cv.algorithms.detection.labels import PixelBox, finite

KEYS = ("images", "annotations", "categories")


def is_coco(doc: Any) -> bool:
    """A COCO instances document, as opposed to a per-image annotation (which has no 'images')."""
    return isinstance(doc, dict) and "images" in doc


def drop_segmentation(obj: dict) -> dict:
    """json.loads object_hook: annotations without their (unused) polygons or RLE masks."""
    obj.pop("segmentation", None)
    return obj


@dataclass(frozen=True)
class CocoBox:
    id: Any  # the annotation's id as given, for messages
    category: int
    bbox: tuple[float, float, float, float]  # x, y, width, height in pixels
    crowd: bool


@dataclass
class CocoImage:
    id: int
    file_name: str
    size: tuple[int, int]  # (width, height) as the file declares it
    boxes: list[CocoBox] = field(default_factory=list)


@dataclass
class CocoSet:
    """One COCO file, checked: its images with their boxes, its categories and its problems."""

    source: str  # "train_annotation/instances.json"
    images: list[CocoImage]
    categories: list[tuple[int, str]]
    problems: list[str]

    def pixel_boxes(self, image: CocoImage, class_of: dict[int, int], train: bool) -> list[PixelBox | str]:
        """An image's boxes with class ids (a problem string for an unknown category). Crowd
        boxes are left out of training and kept out of validation mAP."""
        boxes: list[PixelBox | str] = []
        for box in image.boxes:
            name = f"annotation id {box.id}"  # the image id is the entry's
            if box.category not in class_of:
                known = ", ".join(str(c) for c in sorted(class_of)[:12])
                boxes.append(f"{name}: category_id {box.category} is not in 'categories' (ids {known})")
                continue
            if box.crowd and train:
                continue
            boxes.append(PixelBox(name, class_of[box.category], *box.bbox, difficult=box.crowd))
        return boxes


def _integer(value: Any) -> int | None:
    number = finite(value)
    return int(number) if number is not None and number == int(number) else None


def _short(value: Any) -> str:
    return f"{value!r:.40}"


def parse_coco(doc: Any, source: str) -> CocoSet:
    """A decoded COCO instances document, checked field by field."""
    fail = CocoSet(source, [], [], [])
    missing = [k for k in KEYS if not isinstance(doc, dict) or not isinstance(doc.get(k), list)]
    if missing:
        fail.problems.append(
            f"{source}: a COCO instances file needs the lists {', '.join(KEYS)}; "
            f"{', '.join(missing)} missing or not a list"
        )
        return fail
    problems: list[str] = []
    categories = _categories(doc["categories"], source, problems)
    images = _images(doc["images"], source, problems)
    for index, entry in enumerate(doc["annotations"]):
        box = _annotation(entry, index, source, images, problems)
        if box is not None:
            images[box[0]].boxes.append(box[1])
    return CocoSet(source, list(images.values()), categories, problems)


def _categories(entries: list, source: str, problems: list[str]) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    seen: set[int] = set()
    for index, entry in enumerate(entries):
        ident = _integer(entry.get("id")) if isinstance(entry, dict) else None
        name = entry.get("name") if isinstance(entry, dict) else None
        if ident is None or not isinstance(name, str) or not name:
            problems.append(
                f'{source}: categories[{index}] = {_short(entry)}: expected {{"id": integer, "name": text}}'
            )
        elif ident in seen:
            problems.append(f"{source}: category id {ident} is listed twice")
        else:
            seen.add(ident)
            found.append((ident, name))
    if not entries:
        problems.append(f'{source}: \'categories\' is empty; list every class as {{"id": ..., "name": ...}}')
    return found


def _images(entries: list, source: str, problems: list[str]) -> dict[int, CocoImage]:
    images: dict[int, CocoImage] = {}
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            problems.append(f"{source}: images[{index}] = {_short(entry)}: expected an object")
            continue
        ident = _integer(entry.get("id"))
        where = f"{source} image id {ident}" if ident is not None else f"{source} images[{index}]"
        file_name = entry.get("file_name")
        width, height = _integer(entry.get("width")), _integer(entry.get("height"))
        if ident is None:
            problems.append(f"{where}: id={_short(entry.get('id'))} is not an integer")
        elif not isinstance(file_name, str) or not file_name or "\0" in file_name:
            problems.append(
                f"{where}: file_name={_short(file_name)}: expected the image's path in its channel"
            )
        elif width is None or height is None or width < 1 or height < 1:
            problems.append(
                f"{where}: width={_short(entry.get('width'))}, height={_short(entry.get('height'))}: "
                "expected the image's size in pixels"
            )
        elif ident in images:
            problems.append(
                f"{where}: listed twice ({images[ident].file_name!r} and {file_name!r}); image ids must be unique"
            )
        else:
            images[ident] = CocoImage(ident, file_name, (width, height))
    return images


def _annotation(
    entry: Any, index: int, source: str, images: dict[int, CocoImage], problems: list[str]
) -> tuple[int, CocoBox] | None:
    if not isinstance(entry, dict):
        problems.append(f"{source}: annotations[{index}] = {_short(entry)}: expected an object")
        return None
    ident = entry.get("id", f"#{index}")
    if not isinstance(ident, (int, str)) or isinstance(ident, bool):
        ident = f"#{index}"
    image_id, category = _integer(entry.get("image_id")), _integer(entry.get("category_id"))
    where = f"{source} annotation id {_short(ident)}"
    if image_id is None or image_id not in images:
        problems.append(
            f"{where}: image_id={_short(entry.get('image_id'))} is not the id of an image in 'images'"
        )
        return None
    where += f" (image id {image_id})"
    bbox = entry.get("bbox")
    values = [finite(v) for v in bbox] if isinstance(bbox, list) and len(bbox) == 4 else [None]
    crowd = entry.get("iscrowd", 0)
    if category is None:
        problems.append(f"{where}: category_id={_short(entry.get('category_id'))} is not an integer")
    elif any(v is None for v in values):
        problems.append(f"{where}: bbox={_short(bbox)}: expected [x, y, width, height] in pixels")
    elif crowd not in (0, 1) or isinstance(crowd, bool):
        problems.append(f"{where}: iscrowd={_short(crowd)}: expected 0 or 1")
    else:
        return image_id, CocoBox(ident, category, tuple(values), crowd == 1)  # type: ignore[arg-type]
    return None
