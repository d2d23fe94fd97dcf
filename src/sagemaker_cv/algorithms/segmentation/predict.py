"""Semantic segmentation inference, in the built-in's formats: an image in, per-pixel classes out,
at the size of the image as sent.

* `image/png`: an indexed (palette) PNG whose pixel values are the class indices (the palette
  only colours them for viewers; `numpy.array(PIL.Image.open(...))` gives the indices).
* `application/x-recordio-protobuf` (also `application/x-protobuf`, as AWS's notebook asks): one
  RecordIO-framed `Record` (the SageMaker SDK's record.proto) with the class probabilities
  flattened in `features["target"].float32_tensor.values` and `features["shape"].int32_tensor.values`
  = [1, C, H, W], written here without a protobuf library (four message types).

The image goes through validation's whole-image path (validation_mini_batch_size=1): decoded as
the training reader decodes it (`dataset.decode_image`), raw pixels into the exported any-size
graph (`WholeImage`), which normalises them and returns softmax probabilities at the input's size.

Models of the built-in hold only `model_algo-1` (GluonCV's parameters) and hyperparams.json: the
network is built from algorithm, backbone, num_classes and crop_size, loaded, and traced for any
size as a job's export is.
"""

from __future__ import annotations

import io
import struct

import numpy as np

from sagemaker_cv.algorithms.inference import (
    PIXEL_PROBABILITIES,
    ExportGraph,
    ImagePredictor,
    Prepared,
    graph_block,
    image_size,
    symbol_file,
)
from sagemaker_cv.algorithms.segmentation import archive
from sagemaker_cv.algorithms.segmentation.dataset import Unreadable, decode_image
from sagemaker_cv.algorithms.trained import TrainedModel
from sagemaker_cv.contract.content_types import PNG
from sagemaker_cv.contract.errors import ClientError

PROTOBUF = "application/x-recordio-protobuf"
PROTOBUF_ALIAS = "application/x-protobuf"
#: MXNet's RecordIO magic number, which SageMaker's RecordIO shares
RECORDIO_MAGIC = 0xCED7230A


class SegmentationPredictor(ImagePredictor):
    accepts = (PNG, PROTOBUF, PROTOBUF_ALIAS)

    def __init__(self, net, ctx, num_classes: int, origin: str):
        super().__init__(net, ctx)
        self.num_classes = num_classes
        self.description = f"semantic segmentation ({origin}), {num_classes} classes, any image size"

    def prepare(self, body: bytes) -> Prepared:
        import mxnet as mx

        image_size(body)
        try:
            image = decode_image(body, "the request's image")
        except Unreadable:
            raise ClientError(
                f"the image ({len(body)} bytes) cannot be decoded: it is damaged or truncated"
            ) from None
        height, width = image.shape[:2]
        x = mx.nd.array(image.transpose(2, 0, 1)[None].astype(np.float32), ctx=self.ctx)
        return Prepared(x, width, height)

    def forward(self, x, accept: str | None = None):
        # A mask needs only the winning class: reduced on the device, C times fewer bytes to copy.
        with self._lock:
            probabilities = self.net(x)
            return (probabilities.argmax(axis=1) if accept == PNG else probabilities).asnumpy()

    def respond(self, output, image: Prepared, accept: str) -> bytes:
        if accept == PNG:
            return indexed_png(output[0].astype(np.uint8))
        return recordio_record(output.astype(np.float32))


def palette() -> list[int]:
    """PASCAL VOC's colour map (the bits of the class index spread over R, G and B), the palette
    segmentation masks are usually drawn with; 256 RGB triples."""
    colours = []
    for index in range(256):
        r = g = b = 0
        c = index
        for shift in range(7, -1, -1):
            r |= (c & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        colours += [r, g, b]
    return colours


PALETTE = palette()


def indexed_png(mask: np.ndarray) -> bytes:
    from PIL import Image

    image = Image.fromarray(mask, mode="P")
    image.putpalette(PALETTE)
    out = io.BytesIO()
    # Masks are mostly runs of one value: the fastest zlib level already packs them well.
    image.save(out, format="PNG", compress_level=1)
    return out.getvalue()


# ---- record.proto without a protobuf library --------------------------------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2): messages, strings and packed repeated values."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _value(tensor_field: int, packed: bytes) -> bytes:
    """A `Value` holding one tensor (float32_tensor = 2, int32_tensor = 7) whose `values` (field 1)
    are `packed`."""
    return _field(tensor_field, _field(1, packed))


def _feature(key: str, value: bytes) -> bytes:
    """One entry of `Record.features` (field 1, a map: key = 1, value = 2)."""
    return _field(1, _field(1, key.encode()) + _field(2, value))


def recordio_record(probabilities: np.ndarray) -> bytes:
    """One RecordIO-framed `Record` with the probabilities (N, C, H, W) in `target` and their shape
    in `shape`, as the built-in answers application/x-recordio-protobuf."""
    target = _value(2, np.ascontiguousarray(probabilities, dtype="<f4").tobytes())
    shape = _value(7, b"".join(_varint(int(n)) for n in probabilities.shape))
    record = _feature("target", target) + _feature("shape", shape)
    # RecordIO: magic, then the length (its top three bits flag a split record: 0, it is whole),
    # then the payload padded to four bytes.
    padding = b"\0" * (-len(record) % 4)
    return struct.pack("<II", RECORDIO_MAGIC, len(record)) + record + padding


# ---- loading -----------------------------------------------------------------------------------------


def load(model: TrainedModel, ctx) -> SegmentationPredictor:
    archive.model_file(model.directory)
    facts = network_facts(model)
    symbol = model.directory / f"{archive.MODEL}-symbol.json"
    params = model.directory / f"{archive.MODEL}-0000.params"
    if symbol.is_file() and params.is_file():
        net = graph_block(symbol_file(symbol), params, ctx, static_shape=False)
        origin = "this image's graph"
    else:
        net, origin = gluoncv_network(model, facts, ctx), "GluonCV parameters, as the built-in writes"
    return SegmentationPredictor(net, ctx, facts["num_classes"], origin)


def export_graph(model: TrainedModel, size: tuple[int, int] | None, dynamic_size: bool) -> ExportGraph:
    """The network rebuilt from model_algo-1 and hyperparams.json (a built-in's model has no graph
    beside it), traced for any size as training exports it; an exporter fixes it at `size`
    (default the training crop)."""
    import mxnet as mx

    from sagemaker_cv.algorithms.segmentation.transforms import round_up8

    if dynamic_size:
        raise ClientError(
            "semantic-segmentation: --dynamic-size: the graph resizes its scores to the input's size "
            "(_contrib_BilinearResize2D, mode 'like'), which MXNet's ONNX exporter converts only for "
            "sizes known at export (mode 'size'); export at one size with --size H,W"
        )
    facts = network_facts(model)
    whole = gluoncv_network(model, facts, mx.cpu())
    any_size = whole(mx.sym.var("data"))
    named = {p.name: p.data(mx.cpu()) for p in whole.collect_params().values()}
    params = {k: named[k] for k in any_size.list_inputs() if k != "data"}
    crop = round_up8(facts["crop_size"])
    return ExportGraph(any_size, params, size or (crop, crop), False, PIXEL_PROBABILITIES)


def network_facts(model: TrainedModel) -> dict:
    """algorithm, backbone, num_classes and crop_size from hyperparams.json, parsed as a job's; the
    schema's defaults for those it leaves out (num_classes has none)."""
    from sagemaker_cv.algorithms.segmentation.schema import SCHEMA

    facts = archive.archive_facts(model.directory)
    if "num_classes" not in facts:
        raise ClientError("model hyperparams.json: lacks num_classes, which the network's shape depends on")
    return {key: facts.get(key, SCHEMA.by_name[key].default) for key in archive.KEYS}


def gluoncv_network(model: TrainedModel, facts: dict, ctx):
    """The any-size network for a `model_algo-1` without a graph beside it (the built-in's)."""
    import mxnet as mx

    from sagemaker_cv.algorithms.segmentation.network import WholeImage, segmentation_network
    from sagemaker_cv.algorithms.segmentation.transforms import round_up8

    algorithm, backbone, classes = facts["algorithm"], facts["backbone"], facts["num_classes"]
    net = segmentation_network(algorithm, backbone, classes, round_up8(facts["crop_size"]), False, [ctx])
    path = model.directory / archive.MODEL
    try:
        net.model.load_parameters(str(path), ctx=ctx)
    except (mx.base.MXNetError, AssertionError, ValueError) as exc:
        raise ClientError(
            f"model {path.name}: does not fit {algorithm} {backbone} with num_classes={classes} from "
            f"hyperparams.json ({str(exc)[:200]})"
        ) from None
    whole = WholeImage(net)
    whole.hybridize(static_alloc=True)
    return whole
