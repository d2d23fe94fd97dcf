"""Pascal VOC annotations: one XML file per image. Pure functions on the file's bytes.

    <annotation>
      <filename>000005.jpg</filename>
      <size><width>500</width><height>375</height><depth>3</depth></size>
      <object>
        <name>chair</name><difficult>0</difficult>
        <bndbox><xmin>263</xmin><ymin>211</ymin><xmax>324</xmax><ymax>339</ymax></bndbox>
      </object>
    </annotation>

`bndbox` corners are VOC's: 1-based pixel indices, both inclusive, so the box covers
xmax - xmin + 1 pixels. `difficult` objects are trained on and kept out of validation mAP, as VOC's
own metric does. Class ids come from the names (`classes.voc_classes`).

Element names are case-sensitive, as VOC's own tools read them. A misspelt or differently cased
element that is close to one read here (`<Object>`, `<objects>`, `<obj>`, `<Difficult>`) is an
error naming it: otherwise its content would be missed silently (every object gone, every image
trained as background, with `classes.txt` to fix the class map).

Python's XML parser (expat) expands no external entities and limits entity expansion, so a
hostile file cannot make it read files or grow without bound.
"""

from __future__ import annotations

import difflib
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from sagemaker_cv.algorithms.detection.labels import PixelBox

CORNERS = ("xmin", "ymin", "xmax", "ymax")
#: per element: the children read here, and the other children VOC's files hold (never flagged)
READ = {
    "annotation": ("filename", "size", "object"),
    "size": ("width", "height"),
    "object": ("name", "bndbox", "difficult"),
    "bndbox": CORNERS,
}
OTHER = {
    "annotation": ("folder", "path", "source", "owner", "segmented"),
    "size": ("depth",),
    "object": ("pose", "truncated", "occluded", "part", "actions", "point", "attributes"),
    "bndbox": (),
}


@dataclass(frozen=True)
class VocObject:
    name: str  # "object 2 ('dog')", for messages
    label: str  # the class name
    corners: tuple[float, float, float, float]  # VOC's 1-based inclusive xmin, ymin, xmax, ymax
    difficult: bool


@dataclass
class VocImage:
    source: str  # "train_annotation/000005.xml"
    filename: str | None
    size: tuple[int, int] | None  # (width, height) as the file declares it
    objects: list[VocObject] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def pixel_boxes(self, class_of: dict[str, int], known: str) -> list[PixelBox | str]:
        """The objects as pixel boxes with class ids; an unknown name is a problem string."""
        boxes: list[PixelBox | str] = []
        for obj in self.objects:
            if obj.label not in class_of:
                boxes.append(f"{obj.name}: name {obj.label!r} is not a class of {known}")
                continue
            xmin, ymin, xmax, ymax = obj.corners
            boxes.append(
                PixelBox(
                    obj.name,
                    class_of[obj.label],
                    xmin - 1,
                    ymin - 1,
                    xmax - xmin + 1,
                    ymax - ymin + 1,
                    obj.difficult,
                )
            )
        return boxes


def _number(text: str | None) -> float | None:
    try:
        value = float((text or "").strip())
    except ValueError:
        return None
    return value if value == value and abs(value) != float("inf") else None


def _text(element: ET.Element | None, path: str) -> str | None:
    found = element.find(path) if element is not None else None
    return found.text.strip() if found is not None and found.text else None


def parse_voc(data: bytes, source: str) -> VocImage:
    """One VOC XML annotation, checked; problems name the file and the object."""
    image = VocImage(source, None, None)
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        image.problems.append(f"{source}: not well-formed XML ({exc})")
        return image
    if root.tag != "annotation":
        image.problems.append(
            f"{source}: the root element is <{root.tag:.40}>, expected <annotation> (Pascal VOC)"
        )
        return image
    image.filename = _text(root, "filename")
    if not image.filename or "\0" in image.filename:
        image.problems.append(f"{source}: no <filename>: it names the image in the image channel")
    size = root.find("size")
    if size is not None:
        width, height = _number(_text(size, "width")), _number(_text(size, "height"))
        if not all(v is not None and v >= 1 and v == int(v) for v in (width, height)):
            image.problems.append(
                f"{source}: <size> width {_text(size, 'width')!r}, height {_text(size, 'height')!r}: expected "
                "the image's size in whole pixels"
            )
        else:
            image.size = (int(width), int(height))
    image.problems += near_misses(root, source)
    if size is not None:
        image.problems += near_misses(size, f"{source} <size>")
    for index, element in enumerate(root.iter("object")):
        obj = _object(element, index, source, image.problems)
        if obj is not None:
            image.objects.append(obj)
    return image


def near_misses(element: ET.Element, where: str) -> list[str]:
    """A problem for each child of `element` whose tag is not one read here but close to one
    (case aside): a misspelt <object> would drop every box of the file without a word. A child
    that holds <object> elements itself (a wrapper) is not one: its objects are read."""
    read, other = READ[element.tag], OTHER[element.tag]
    problems = []
    for child in element:
        tag = child.tag if isinstance(child.tag, str) else ""  # comments and processing instructions
        if not tag or tag in read or tag in other:
            continue
        close = difflib.get_close_matches(tag.lower(), read, n=1, cutoff=0.6)
        if close and child.find(".//object") is None:
            problems.append(
                f"{where}: <{tag:.40}> is not an element of Pascal VOC's <{element.tag}>: expected "
                f"<{close[0]}> (names are case-sensitive); as written, it would be ignored"
            )
    return problems


def _object(element: ET.Element, index: int, source: str, problems: list[str]) -> VocObject | None:
    label = _text(element, "name")
    name = f"object {index}" + (f" ({label!r:.40})" if label else "")
    misses = near_misses(element, f"{source} {name}")
    box = element.find("bndbox")
    if box is not None:
        misses += near_misses(box, f"{source} {name} <bndbox>")
    if misses:
        problems.extend(misses)
        return None
    if not label:
        problems.append(f"{source} {name}: no <name> (the object's class)")
        return None
    corners = [_number(_text(box, key)) for key in CORNERS]
    if any(v is None for v in corners):
        shown = ", ".join(f"{k}={_text(box, k)!r:.20}" for k in CORNERS)
        problems.append(f"{source} {name}: <bndbox> needs numbers {', '.join(CORNERS)} (got {shown})")
        return None
    difficult = _text(element, "difficult") or "0"
    if difficult not in ("0", "1"):
        problems.append(f"{source} {name}: <difficult> {difficult!r:.20}: expected 0 or 1")
        return None
    return VocObject(name, label, tuple(corners), difficult == "1")  # type: ignore[arg-type]
