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
import re
import struct
import warnings
from dataclasses import dataclass
from typing import BinaryIO

from PIL import Image

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: Pillow refuses to open an image above twice its MAX_IMAGE_PIXELS without telling its size
BOMB = 2 * Image.MAX_IMAGE_PIXELS if Image.MAX_IMAGE_PIXELS else None


@dataclass(frozen=True)
class Header:
    """What an image's header says: (width, height), or only that it exceeds Pillow's limit."""

    width: int | None = None
    height: int | None = None
    pixels_declared: int | None = None  # when only the count is known
    beyond: int | None = None  # when only this is known: the header declares more pixels

    @property
    def pixels(self) -> int:
        if self.pixels_declared is not None:
            return self.pixels_declared
        if self.beyond is not None:
            return self.beyond + 1
        return (self.width or 0) * (self.height or 0)

    def describe(self) -> str:
        if self.width is not None:
            return f"{self.width}x{self.height} pixels (width x height)"
        if self.pixels_declared is not None:
            return f"{self.pixels_declared:,} pixels"
        return f"more than {self.beyond:,} pixels"


def read_header(data: bytes | BinaryIO) -> Header | None:
    """The size an encoded image declares, or None when Pillow does not recognise it (then
    OpenCV's decoder judges it)."""
    source = io.BytesIO(data) if isinstance(data, (bytes, bytearray, memoryview)) else data
    # Between MAX_IMAGE_PIXELS and twice that, Pillow only warns: the cap here decides instead.
    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
    try:
        with Image.open(source) as image:
            return Header(*image.size)
    except Image.DecompressionBombError as exc:
        # Pillow refuses before telling the size, but its message carries the pixel count.
        counted = re.search(r"\((\d+) pixels\)", str(exc))
        return Header(pixels_declared=int(counted.group(1))) if counted else Header(beyond=BOMB)
    # Pillow's format plugins raise whatever their parsers meet in a damaged header (struct.error,
    # IndexError, EOFError, ...); all of them mean the same here: not an image Pillow can size.
    except Exception:  # noqa: BLE001
        return _png_size(data)


def _png_size(data) -> Header | None:
    """A PNG's size from its first chunk, for the files Pillow will not open (no pixel data after
    the header): OpenCV would allocate the declared size before finding the data missing."""
    head = bytes(data[:24]) if isinstance(data, (bytes, bytearray, memoryview)) else b""
    if len(head) < 24 or not head.startswith(PNG_SIGNATURE) or head[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", head[16:24])
    return Header(width, height)


def cap_problem(header: Header | None, limit: int, fix: str) -> str | None:
    """Why an image whose header is `header` may not be decoded (more than `limit` pixels), or None."""
    if header is None or header.pixels <= limit:
        return None
    return f"image is {header.describe()}, more than the {limit:,} pixels an image may have here; {fix}"
