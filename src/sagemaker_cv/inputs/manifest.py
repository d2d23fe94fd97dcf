"""Augmented manifests (Ground Truth output) as SageMaker streams them in Pipe mode: with
`RecordWrapperType: RecordIO`, one RecordIO record per attribute of each manifest line, in
`AttributeNames` order, the image first. A `-ref` attribute's record holds the bytes of the S3
object it names; any other attribute's record holds its value as text (JSON for objects; a string
value may arrive with or without its JSON quotes, so both are read).

Pure functions on bytes: the channel's layout, and each algorithm's label formats (contract 2.4,
3.3, 4.1). Every problem is a ClientError naming the sample (its 0-based line in the manifest),
the attribute, the value and what is valid.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sagemaker_cv.contract.config import Channel
from sagemaker_cv.contract.errors import ClientError

MAX_ATTRIBUTES = 16  # SageMaker's limit on AttributeNames
LABEL_FORMATS = ("multi-hot", "class-id")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_SHOWN = 80  # characters of a bad value quoted in a message


@dataclass(frozen=True)
class ManifestLayout:
    """The attributes of one sample in stream order; `assumed` when inputdataconfig.json gave no
    AttributeNames (SageMaker may leave them out) and the algorithm's usual pair is taken."""

    attributes: tuple[str, ...]
    assumed: bool = False

    def describe(self, position: int) -> str:
        name = self.attributes[position]
        return f"{name!r} (attribute {position + 1} of {len(self.attributes)}{', assumed' if self.assumed else ''})"


def layout_for(channel: Channel, default: Sequence[str]) -> ManifestLayout | None:
    """The manifest layout of a channel, or None when it is not an augmented manifest
    (RecordWrapperType is not RecordIO). `default` are the attribute names assumed when
    AttributeNames is absent; their count is what the algorithm reads per sample."""
    if (channel.record_wrapper or "None") != "RecordIO":
        return None
    names = channel.extra.get("AttributeNames")
    if names is None:
        return ManifestLayout(tuple(default), assumed=True)
    where = f"channel {channel.name!r} AttributeNames={names!r}"
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise ClientError(f"{where}: expected a list of attribute names")
    if not 1 <= len(names) <= MAX_ATTRIBUTES:
        raise ClientError(f"{where}: expected 1 to {MAX_ATTRIBUTES} names")
    if len(names) != len(default):
        raise ClientError(
            f"{where}: expected {len(default)} attributes, the image first then its label "
            f"(e.g. {list(default)})"
        )
    return ManifestLayout(tuple(names))


def where(source: str, sample: int, layout: ManifestLayout, position: int) -> str:
    """`train_0 sample 12 attribute 'class' (attribute 2 of 2)`; samples count from 0, as the
    manifest's lines do."""
    return f"{source} sample {sample} attribute {layout.describe(position)}"


_SIGNATURES = (
    (b"\xff\xd8\xff", "a JPEG image"),
    (PNG_SIGNATURE, "a PNG image"),
    (b"GIF8", "a GIF image"),
    (b"BM", "a BMP image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
)


def _show(raw: bytes) -> str:
    """A value for a message: text quoted (shortened), binary data described, never its bytes."""
    head = raw[:_SHOWN]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:  # text cut inside a character is still text
        text = head[: exc.start].decode("utf-8") if exc.start > len(head) - 4 else None
    if text is None or any(ord(c) < 32 and c not in "\t\n\r" for c in text):
        kind = next((name for magic, name in _SIGNATURES if raw.startswith(magic)), "binary data")
        return f"{kind} ({len(raw)} bytes, starting {raw[:8].hex(' ')})"
    return repr(text + ("..." if len(raw) > _SHOWN else ""))


def check_image(raw: bytes, at: str) -> None:
    """An image attribute must hold the image's bytes. Text there means the attributes are in
    the wrong order (the decoder judges the bytes of real images later)."""
    stripped = raw.lstrip()
    if not stripped or stripped[:1] in b'{["-0123456789' or stripped[:2] == b"s3":
        raise ClientError(
            f"{at}: holds {_show(raw)}, not image bytes; AttributeNames must list the image (a -ref "
            "attribute) first"
        )


def check_png(raw: bytes, at: str) -> None:
    if not raw.startswith(PNG_SIGNATURE):
        raise ClientError(f"{at}: holds {_show(raw)}, not a PNG image; label masks must be PNG files")


def value(raw: bytes, at: str) -> Any:
    """The attribute's value: JSON, a JSON string holding JSON (`"[1, 0]"`), or plain text."""
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ClientError(f"{at}: holds {_show(raw)}, not UTF-8 text") from None
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        return text
    if isinstance(parsed, str):
        try:
            return json.loads(parsed)
        except json.JSONDecodeError:
            return parsed
    return parsed


def _number(x: Any) -> float | None:
    if isinstance(x, bool):
        return None
    if isinstance(x, (int, float)):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, str):
        try:
            f = float(x)
        except ValueError:
            return None
        return f if math.isfinite(f) else None
    return None


def _class_id(x: Any, num_classes: int) -> int | None:
    f = _number(x)
    if f is None or f != int(f) or not 0 <= f < num_classes:
        return None
    return int(f)


def label_format(channel: Channel) -> str:
    """`application/x-recordio; label-format=class-id`: multi-hot unless said (contract 2.4)."""
    fmt = channel.content_type_params.get("label-format", "multi-hot")
    if fmt not in LABEL_FORMATS:
        raise ClientError(
            f"channel {channel.name!r} ContentType={channel.content_type!r}: label-format={fmt!r}, "
            f"expected one of {', '.join(LABEL_FORMATS)}"
        )
    return fmt


def classification_label(
    raw: bytes, at: str, *, num_classes: int, multi_label: bool, fmt: str = "multi-hot"
) -> tuple[float, ...]:
    """Image classification labels: one class index, or (multi_label) a multi-hot vector of
    num_classes values. A multi-label value is a multi-hot list (`[1, 0, 1]`) or, with
    label-format=class-id, a list of class indices (`[0, 2]`)."""
    v = value(raw, at)
    ids = f"an integer in [0, {num_classes - 1}] (num_classes={num_classes})"
    if not multi_label:
        if isinstance(v, list) and len(v) == num_classes > 1 and fmt == "multi-hot":
            hot = [_number(x) for x in v]
            if all(h in (0.0, 1.0) for h in hot) and hot.count(1.0) == 1:
                return (float(hot.index(1.0)),)
        item = v[0] if isinstance(v, list) and len(v) == 1 else v
        k = _class_id(item, num_classes)
        if k is None:
            raise ClientError(f"{at}: label {_show(raw)}: expected one class index, {ids} (multi_label=0)")
        return (float(k),)
    if fmt == "class-id":
        items = v if isinstance(v, list) else [v]
        found = [_class_id(x, num_classes) for x in items]
        if any(k is None for k in found) or len(set(found)) != len(found):
            raise ClientError(
                f"{at}: label {_show(raw)}: expected a list of distinct class indices, each {ids} "
                "(label-format=class-id)"
            )
        return tuple(1.0 if k in found else 0.0 for k in range(num_classes))
    hot = [_number(x) for x in v] if isinstance(v, list) else []
    if len(hot) != num_classes or not all(h in (0.0, 1.0) for h in hot):
        raise ClientError(
            f"{at}: label {_show(raw)}: expected a multi-hot list of num_classes={num_classes} 0/1 values "
            "(label-format=multi-hot, the default; use 'application/x-recordio; label-format=class-id' "
            "for lists of class indices)"
        )
    return tuple(float(h) for h in hot)


def detection_boxes(
    raw: bytes, at: str, *, num_classes: int
) -> list[tuple[float, float, float, float, float]]:
    """A Ground Truth bounding-box object (contract 3.3) as (class, xmin, ymin, xmax, ymax) with
    corners as fractions of the image size, the layout of detection RecordIO labels."""
    v = value(raw, at)
    if not isinstance(v, dict):
        raise ClientError(
            f"{at}: {_show(raw)}: expected a JSON object with image_size and annotations (Ground Truth's "
            "bounding-box format)"
        )
    size = v.get("image_size")
    first = size[0] if isinstance(size, list) and size and isinstance(size[0], dict) else None
    width, height = (_number(first.get("width")), _number(first.get("height"))) if first else (None, None)
    if not width or not height or width <= 0 or height <= 0:
        raise ClientError(f'{at}: image_size={size!r}: expected [{{"width": W, "height": H, "depth": 3}}]')
    annotations = v.get("annotations")
    if not isinstance(annotations, list):
        raise ClientError(f"{at}: annotations={annotations!r}: expected a list of boxes")
    boxes = []
    for i, box in enumerate(annotations):
        if not isinstance(box, dict):
            raise ClientError(f"{at}: annotations[{i}]={box!r}: expected an object")
        cls = _class_id(box.get("class_id"), num_classes)
        if cls is None:
            raise ClientError(
                f"{at}: annotations[{i}] class_id={box.get('class_id')!r}: expected an integer in "
                f"[0, {num_classes - 1}] (num_classes={num_classes})"
            )
        fields = {k: _number(box.get(k)) for k in ("left", "top", "width", "height")}
        bad = [k for k, f in fields.items() if f is None or (k in ("width", "height") and f <= 0)]
        if bad:
            raise ClientError(
                f"{at}: annotations[{i}] {', '.join(f'{k}={box.get(k)!r}' for k in bad)}: expected numbers "
                "(pixels; width and height > 0)"
            )
        left, top, w, h = fields["left"], fields["top"], fields["width"], fields["height"]
        xmin, ymin, xmax, ymax = left / width, top / height, (left + w) / width, (top + h) / height
        if xmin < -0.01 or ymin < -0.01 or xmax > 1.01 or ymax > 1.01:
            raise ClientError(
                f"{at}: annotations[{i}] (left={left:g}, top={top:g}, width={w:g}, height={h:g}) lies outside "
                f"the image ({width:g}x{height:g})"
            )
        boxes.append((float(cls), max(0.0, xmin), max(0.0, ymin), min(1.0, xmax), min(1.0, ymax)))
    return boxes


def detection_label_vector(boxes: Sequence[tuple[float, ...]]) -> list[float]:
    """The label vector of a detection RecordIO record (contract 3.2): a header of 2 values (header
    length, label width 5) then one [class, xmin, ymin, xmax, ymax] per box."""
    return [2.0, 5.0] + [x for box in boxes for x in box]
