"""What the three predictors share: the request's image checked and decoded, and the shape of a
predictor. No HTTP here: serving negotiates the content types a predictor declares and turns a
ClientError raised while predicting into 400, anything else into 500.

A request body is at most a few MiB, but a small PNG can declare a huge image: every image is
sized from its header first (Pillow reads the header without the pixels) and refused above
MAX_PIXELS, the cap classification's training reader puts on a resized image. A truncated JPEG
is refused too: OpenCV decodes one without a word, filling the missing rows with grey.

The image's format is read from its bytes whatever the Content-Type says, so `application/octet-stream`
(the SageMaker Python SDK's default `Predictor` sends it for raw bytes) is an image like the others;
bytes that are no image raise NotAnImage, which serving answers with the types it takes.
"""

from __future__ import annotations

import io
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from sagemaker_cv.contract.content_types import JPEG, OCTET_STREAM, PNG, X_IMAGE
from sagemaker_cv.contract.errors import ClientError, NotAnImage

#: request content types every predictor takes: the built-ins' documented three, and the SDK's
#: default for raw bytes (every body is decoded by what its bytes are, not by its type)
IMAGE_CONTENT_TYPES = (JPEG, PNG, X_IMAGE, OCTET_STREAM)
#: pixels (width x height) an image may declare; classification's MAX_RESIZED_PIXELS
MAX_PIXELS = 1 << 25
FORMATS = "JPEG, PNG, BMP, GIF, TIFF or WebP"


@dataclass(frozen=True)
class Prepared:
    """A request's image ready for the network: the input batch of one, and the size of the image
    as sent (responses are relative to it, or of its size)."""

    x: Any  # mx.nd.NDArray (1, C, H, W), float32 raw pixels on the model's device
    width: int
    height: int


class ImagePredictor:
    """Request bytes in, response bytes out, for one loaded model: `prepare` (decode and the
    algorithm's validation transform), `forward` (the exported graph), `respond` (the built-in's
    response format). Subclasses set `accepts` (response media types, the default first), and
    `description` (logged when a worker has loaded the model).

    Gluon's cached graphs are not thread-safe: one forward at a time per model, while decoding
    and encoding of other requests go on in their own threads (OpenCV and MXNet release the GIL).
    """

    accepts: tuple[str, ...] = ()
    content_types: tuple[str, ...] = IMAGE_CONTENT_TYPES
    description: str = ""

    def __init__(self, net, ctx):
        self.net, self.ctx = net, ctx
        self._lock = threading.Lock()

    def prepare(self, body: bytes) -> Prepared:
        raise NotImplementedError

    def respond(self, output, image: Prepared, accept: str) -> bytes:
        raise NotImplementedError

    def forward(self, x, accept: str | None = None):
        """The network's output for one prepared batch, as numpy (waits for the result); `accept`,
        when given, lets a predictor reduce it to what that response needs."""
        with self._lock:
            return self.net(x).asnumpy()

    def __call__(self, body: bytes, accept: str) -> bytes:
        """The response to one request; `accept` is one of `accepts` (serving negotiated it)."""
        image = self.prepare(body)
        return self.respond(self.forward(image.x, accept), image, accept)


def image_size(body: bytes) -> tuple[int, int]:
    """(width, height) the image declares; a ClientError if it is empty, not an image, larger than
    MAX_PIXELS or a truncated JPEG."""
    if not body:
        raise ClientError("the request body is empty: send the bytes of one image (JPEG or PNG)")
    from PIL import Image

    warnings.simplefilter("ignore", Image.DecompressionBombWarning)
    try:
        with Image.open(io.BytesIO(body)) as image:
            width, height = image.size
            kind = image.format
    except Image.DecompressionBombError:
        raise ClientError(too_large(None, None)) from None
    # Pillow's format plugins raise whatever their parsers meet in a damaged header (struct.error,
    # IndexError, EOFError, ...); all mean the same here.
    except Exception:  # noqa: BLE001
        raise NotAnImage(
            f"the request body ({len(body)} bytes, starting {body[:8]!r}) is not an image in a "
            f"format this server decodes ({FORMATS})"
        ) from None
    if width * height > MAX_PIXELS:
        raise ClientError(too_large(width, height))
    if kind == "JPEG" and not jpeg_complete(body):
        raise ClientError(
            f"the JPEG image ({len(body)} bytes) is truncated: its data ends before the end-of-image "
            "marker; send the whole file"
        )
    return width, height


def too_large(width: int | None, height: int | None) -> str:
    size = f"{width}x{height} pixels (width x height)" if width else "more pixels than Pillow opens"
    return (
        f"the image is {size}, more than the {MAX_PIXELS:,} pixels a request may have; send a smaller image"
    )


def jpeg_complete(body: bytes) -> bool:
    """Whether the JPEG's compressed data reaches an end-of-image marker. The header segments are
    skipped by their lengths (an EXIF thumbnail inside one has an end marker of its own); in the
    compressed data a 0xFF byte is always followed by 0x00 or a marker, so the first FFD9 after the
    first scan header is the end of the image."""
    position = 2
    while position + 4 <= len(body):
        if body[position] != 0xFF:
            return False
        marker = body[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker == 0xDA:  # start of scan: compressed data follows
            return body.find(b"\xff\xd9", position) >= 0
        position += 2 + int.from_bytes(body[position + 2 : position + 4], "big")
    return False


def decode(body: bytes, flag: int) -> np.ndarray:
    """The request's image decoded by OpenCV with `flag` (BGR or grey, as the training readers
    decode), after the checks of `image_size`."""
    image_size(body)
    image = cv2.imdecode(np.frombuffer(body, dtype=np.uint8), flag)
    if image is None:
        raise ClientError(f"the image ({len(body)} bytes) cannot be decoded: it is damaged or truncated")
    return image


def graph_block(symbol, params: Path, ctx, *, static_shape: bool = True):
    """A hybridized Gluon block running `symbol` (input `data`) with the parameters of the file
    `params` (MXNet's `arg:`/`aux:` names), on `ctx`. A file that does not fit is a ClientError."""
    import mxnet as mx

    with warnings.catch_warnings():  # the input's type is known only when data arrives: harmless
        warnings.filterwarnings("ignore", message="Cannot decide type")
        net = mx.gluon.SymbolBlock(symbol, mx.sym.var("data"))
    try:
        net.collect_params().load(str(params), ctx=ctx, ignore_extra=True)
    except (mx.base.MXNetError, AssertionError, ValueError) as exc:
        raise ClientError(f"model {params.name}: does not fit its graph ({str(exc)[:300]})") from None
    # Images of one size per model (classification, detection) run on a fixed plan; segmentation
    # takes every size and would replan on each one.
    net.hybridize(static_alloc=True, static_shape=static_shape)
    return net


def symbol_file(path: Path):
    """The graph of an MXNet `-symbol.json` file, or a ClientError naming the file."""
    import mxnet as mx

    try:
        return mx.sym.load(str(path))
    except mx.base.MXNetError as exc:
        raise ClientError(
            f"model {path.name}: not an MXNet graph ({str(exc).splitlines()[0][:200]})"
        ) from None


# ---- the inference graph, for exporters (tools.onnx_export) ---------------------------------------

#: the layouts of an inference graph's output, which an exporter's parity check compares by
PROBABILITIES = "class probabilities (batch, classes)"
DETECTIONS = "detections (batch, rows, [class, score, xmin, ymin, xmax, ymax])"
PIXEL_PROBABILITIES = "class probabilities per pixel (batch, classes, height, width)"


@dataclass(frozen=True)
class ExportGraph:
    """A model's inference graph as an exporter takes it: an MXNet symbol with input `data`
    (float32 NCHW RGB 0-255, normalised inside), its parameters (no arg:/aux: prefix), the input
    size to export at, whether any size is meant, and the layout of its output."""

    symbol: Any
    params: dict
    size: tuple[int, int]
    dynamic_size: bool
    output: str  # one of the layouts above


def load_params(path: Path) -> dict:
    """An exported graph's parameters by name (MXNet's `arg:`/`aux:` prefixes dropped)."""
    import mxnet as mx

    try:
        saved = mx.nd.load(str(path))
    except mx.base.MXNetError as exc:
        raise ClientError(f"model {path.name}: cannot be read ({str(exc)[:200]})") from None
    return {k.split(":", 1)[-1]: v for k, v in saved.items()}
