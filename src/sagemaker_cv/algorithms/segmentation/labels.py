"""Label maps and mask decoding: pure functions on dicts and numpy arrays, no I/O.

The built-in reads a label PNG as one 8-bit channel of pixel values and turns each value into a
class index through a label map (contract 4.2):

* `{"scale": k}` (k a string or a number): class = pixel // k;
* `{"map": {"class": pixel, ...}}`: key = class index, value = the pixel value that encodes it;
* 255 is "ignore" everywhere: no loss and no metric count on those pixels.

A pixel value that maps to no class (and is not 255) is an error the user must see, with the
value and where it occurs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

IGNORE = 255
DEFAULT_SPEC: dict[str, Any] = {"scale": 1}


class LabelMapError(ValueError):
    """The label map itself is invalid; the message says why."""


@dataclass(frozen=True)
class LabelMap:
    """How pixel values become class indices. `spec` is what the user wrote (for the log)."""

    spec: dict
    scale: int | None = None
    pixels: tuple[tuple[int, int], ...] = ()  # (pixel value, class) for a "map"

    def encode(self, mask: np.ndarray, num_classes: int) -> tuple[np.ndarray, Bad | None]:
        """Class indices (uint8, IGNORE kept) for a 2-D array of pixel values, and the first pixel
        whose value maps to no class in [0, num_classes) (None if every pixel maps)."""
        values = mask.astype(np.int64, copy=False)
        ignore = values == IGNORE
        if self.scale is not None:
            classes = values // self.scale
        else:
            # A map's pixel values are below 255: one entry per 8-bit value, and every value
            # outside 0..255 maps to no class (a table up to the mask's largest value would take
            # 16 GB for one 32-bit pixel at 2e9).
            table = np.full(IGNORE + 1, -1, dtype=np.int64)
            for pixel, cls in self.pixels:
                table[pixel] = cls
            classes = np.where((values >= 0) & (values <= IGNORE), table[np.clip(values, 0, IGNORE)], -1)
        bad = ~ignore & ((classes < 0) | (classes >= num_classes) | (values < 0))
        out = np.where(ignore, IGNORE, np.clip(classes, 0, IGNORE)).astype(np.uint8)
        if not bad.any():
            return out, None
        row, col = (int(i) for i in np.argwhere(bad)[0])
        return out, Bad(int(values[row, col]), row, col, int(bad.sum()))


@dataclass(frozen=True)
class Bad:
    """The first unmappable pixel of a mask: its value, where it is, and how many there are."""

    value: int
    row: int
    col: int
    count: int

    def describe(self, label_map: LabelMap, num_classes: int) -> str:
        more = f" ({self.count} such pixels)" if self.count > 1 else ""
        return (
            f"pixel value {self.value} at row {self.row}, column {self.col} maps to no class{more} "
            f"(label map {label_map.spec}, num_classes={num_classes}; 255 means ignore)"
        )


DEFAULT = LabelMap(DEFAULT_SPEC, scale=1)


def _integer(value: Any, what: str) -> int:
    """A JSON number or numeric string that is a whole number ("3", 3, 3.0)."""
    if isinstance(value, bool):
        raise LabelMapError(f"{what}={value!r:.40}: expected an integer")
    if isinstance(value, str):
        text = value.strip()
        try:
            number = float(text)
        except ValueError:
            raise LabelMapError(f"{what}={value!r:.40}: expected an integer") from None
    elif isinstance(value, (int, float)):
        try:
            number = float(value)
        except OverflowError:  # an integer of hundreds of digits
            raise LabelMapError(f"{what}={value!r:.40}: expected an integer of a sensible size") from None
    else:
        raise LabelMapError(f"{what}={value!r:.40}: expected an integer")
    if not number.is_integer():
        raise LabelMapError(f"{what}={value!r:.40}: expected an integer")
    return int(number)


def parse_label_map(spec: Any, num_classes: int) -> LabelMap:
    """Validate a decoded label-map JSON object; raise LabelMapError naming the problem."""
    if not isinstance(spec, dict):
        raise LabelMapError(f'expected a JSON object {{"scale": k}} or {{"map": {{...}}}}, got {spec!r:.80}')
    keys = set(spec)
    if keys == {"scale"}:
        scale = _integer(spec["scale"], "scale")
        if scale < 1:
            raise LabelMapError(f"scale={spec['scale']!r}: expected a positive integer")
        return LabelMap(dict(spec), scale=scale)
    if keys == {"map"}:
        return LabelMap(dict(spec), pixels=_pixels(spec["map"], num_classes))
    raise LabelMapError(
        f'expected exactly one key, "scale" or "map", got {", ".join(sorted(map(str, keys))) or "none"}'
    )


def _pixels(mapping: Any, num_classes: int) -> tuple[tuple[int, int], ...]:
    if not isinstance(mapping, dict) or not mapping:
        raise LabelMapError(f'"map" must be a non-empty object {{"class": pixel value}}, got {mapping!r:.80}')
    pairs: dict[int, int] = {}
    for key, value in mapping.items():
        cls = _integer(key, "map key (class index)")
        if not 0 <= cls < num_classes:
            raise LabelMapError(f"map key {key!r:.40}: class index outside [0, {num_classes - 1}]")
        pixel = _integer(value, f"map[{key!r}] (pixel value)")
        if pixel == IGNORE:
            raise LabelMapError(f"map[{key!r}]=255: 255 is reserved for 'ignore'")
        if not 0 <= pixel < IGNORE:
            raise LabelMapError(f"map[{key!r:.40}]={value!r:.40}: pixel value outside [0, 254]")
        if pixel in pairs:
            raise LabelMapError(f"pixel value {pixel} is given to classes {pairs[pixel]} and {cls}")
        pairs[pixel] = cls
    return tuple(sorted(pairs.items()))


def single_channel(array: np.ndarray) -> tuple[np.ndarray, str | None]:
    """One channel of pixel values from a decoded mask: as is when 2-D, else the first channel
    when every channel holds the same values; otherwise a description of the first difference."""
    if array.ndim == 2:
        return array, None
    differs = np.any(array != array[..., :1], axis=-1)
    if not differs.any():
        return array[..., 0], None
    row, col = (int(i) for i in np.argwhere(differs)[0])
    values = ", ".join(str(int(v)) for v in array[row, col])
    return array[..., 0], (
        f"has {array.shape[-1]} channels that are not equal (values {values} at row {row}, column {col}); "
        "a label image has one channel of class values (8-bit grey or palette 'P' mode)"
    )
