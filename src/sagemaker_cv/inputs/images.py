"""Image sizes read from the header, before a pixel is decoded (framework-free).

Decoding an image costs its full size in memory whatever the network later makes of it: a
20000x20000 PNG of 1.1 MB on disk decodes to 1.2 GB, and each decoding thread may hold one. So
every image an algorithm reads is measured from its header first (Pillow reads the header
without the pixels) and refused above the algorithm's cap, naming the file and its size.

Pillow knows the formats users store (JPEG, PNG, BMP, GIF, TIFF, WebP). An image in a format it
does not know goes on to OpenCV, whose decoder refuses more than 2^30 pixels itself.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from typing import BinaryIO

from PIL import Image

#: Pillow refuses to open an image above twice its MAX_IMAGE_PIXELS without telling its size
BOMB = 2 * Image.MAX_IMAGE_PIXELS if Image.MAX_IMAGE_PIXELS else None


@dataclass(frozen=True)
class Header:
    """What an image's header says: (width, height), or only that it exceeds Pillow's limit."""

    width: int | None = None
    height: int | None = None
    beyond: int | None = None  # set when the header declares more pixels than this (sizes unknown)

    @property
    def pixels(self) -> int:
        if self.beyond is not None:
            return self.beyond + 1
        return (self.width or 0) * (self.height or 0)

    def describe(self) -> str:
        if self.beyond is not None:
            return f"more than {self.beyond:,} pixels"
        return f"{self.width}x{self.height} pixels (width x height)"


def read_header(data: bytes | BinaryIO) -> Header | None:
    """The size an encoded image declares, or None when Pillow does not recognise it (then
    OpenCV's decoder judges it)."""
    source = io.BytesIO(data) if isinstance(data, (bytes, bytearray, memoryview)) else data
    # Between MAX_IMAGE_PIXELS and twice that, Pillow only warns: the cap here decides instead.
    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
    try:
        with Image.open(source) as image:
            return Header(*image.size)
    except Image.DecompressionBombError:
        return Header(beyond=BOMB)
    # Pillow's format plugins raise whatever their parsers meet in a damaged header (struct.error,
    # IndexError, EOFError, ...); all of them mean the same here: not an image Pillow can size.
    except Exception:  # noqa: BLE001
        return None


def cap_problem(header: Header | None, limit: int, fix: str) -> str | None:
    """Why an image whose header is `header` may not be decoded (more than `limit` pixels), or None."""
    if header is None or header.pixels <= limit:
        return None
    return f"image is {header.describe()}, more than the {limit:,} pixels an image may have here; {fix}"
