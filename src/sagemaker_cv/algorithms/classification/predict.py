"""Image classification inference, in the built-in's formats: an image in, class probabilities out
(`application/json`: a bare list; `application/jsonlines`: `{"prediction": [...]}` and a newline).

The image goes through validation's transform: MXNet's ImageRecordIter without augmentation
decodes it (BGR, or grey for a one-channel model), resizes its shorter side to `resize` and takes
the central image_shape crop, as `validation_crop` does here (tests compare the two). `resize` is
the one the model's model-shapes.json records (`archive.validation_side`: the job's `resize`, or
the shorter side every image of a job without one already had). A model without it (the
built-in's, or a job whose images had no common shorter side) is served as before: the shorter
side resized to the crop's longer side, so that every image yields a crop of its centre (the
built-in's "resized automatically").

Models of the built-in load too: its graph ends in SoftmaxOutput (a training loss whose forward
pass is softmax), which is replaced here by the softmax itself, so the graph needs no label.
"""

from __future__ import annotations

import json

import cv2
import numpy as np

from sagemaker_cv.algorithms.classification import archive
from sagemaker_cv.algorithms.inference import (
    PROBABILITIES,
    ExportGraph,
    ImagePredictor,
    Prepared,
    decode,
    graph_block,
    load_params,
    symbol_file,
)
from sagemaker_cv.algorithms.trained import TrainedModel
from sagemaker_cv.contract.content_types import JSON, JSONLINES
from sagemaker_cv.contract.errors import ClientError

#: graph outputs that are losses in training and activations in inference
LOSS_HEADS = {"SoftmaxOutput": "softmax", "LogisticRegressionOutput": "sigmoid"}


def validation_crop(image: np.ndarray, image_shape: tuple[int, int, int], resize: int | None) -> np.ndarray:
    """ImageRecordIter's default augmenter without random crop or mirror: the shorter side
    resized to `resize` (C++ integer arithmetic, bilinear), then the central crop of image_shape."""
    if resize:
        h, w = image.shape[:2]
        size = (resize, resize * h // w) if h > w else (resize * w // h, resize)  # (width, height)
        image = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
    _, crop_h, crop_w = image_shape
    y, x = (image.shape[0] - crop_h) // 2, (image.shape[1] - crop_w) // 2
    return image[y : y + crop_h, x : x + crop_w]


def serving_resize(image_shape: tuple[int, int, int], recorded: int | None = None) -> int:
    """The shorter side a request image is resized to: validation's (`recorded`), else the crop's
    longer side, so that every image covers the crop."""
    return recorded or max(image_shape[1:])


class ClassificationPredictor(ImagePredictor):
    accepts = (JSON, JSONLINES)

    def __init__(
        self, net, ctx, image_shape: tuple[int, int, int], activation: str, resize: int | None = None
    ):
        super().__init__(net, ctx)
        self.image_shape, self.activation = image_shape, activation
        self.resize = serving_resize(image_shape, resize)
        how = f"resize {self.resize}" if resize else f"resize {self.resize} (the crop's side: none recorded)"
        self.description = (
            f"image classification, input {','.join(map(str, image_shape))}, {how}, {activation} outputs"
        )

    def prepare(self, body: bytes) -> Prepared:
        import mxnet as mx

        channels = self.image_shape[0]
        image = decode(body, cv2.IMREAD_COLOR if channels == 3 else cv2.IMREAD_GRAYSCALE)
        height, width = image.shape[:2]
        crop = validation_crop(image, self.image_shape, self.resize)
        chw = crop[:, :, ::-1].transpose(2, 0, 1) if channels == 3 else crop[None]
        x = mx.nd.array(chw[None].astype(np.float32), ctx=self.ctx)
        return Prepared(x, width, height)

    def respond(self, output, image: Prepared, accept: str) -> bytes:
        probabilities = output[0].tolist()
        if accept == JSONLINES:
            return (json.dumps({"prediction": probabilities}) + "\n").encode()
        return json.dumps(probabilities).encode()


def inference_graph(symbol):
    """`symbol` with a training loss at its head replaced by the activation it computes; the
    activation's name (softmax or sigmoid)."""
    import mxnet as mx

    head = json.loads(symbol.tojson())
    op = head["nodes"][head["heads"][0][0]]["op"]
    if op in LOSS_HEADS:
        logits = symbol.get_children()[0]
        activation = LOSS_HEADS[op]
        return getattr(mx.sym, activation)(logits, name=activation), activation
    if op not in ("softmax", "sigmoid"):
        raise ClientError(
            f"model: the classifier's graph ends in {op}, not in softmax, sigmoid or SoftmaxOutput; "
            "it is not an image-classification model"
        )
    return symbol, op


def export_graph(model: TrainedModel, size: tuple[int, int] | None, dynamic_size: bool) -> ExportGraph:
    """The graph serving runs, for an exporter: any input size converts, so `size` picks one
    (default the job's image_shape) and `dynamic_size` leaves it open."""
    symbol_path, params, _ = archive.model_files(model.directory)
    symbol, _ = inference_graph(symbol_file(symbol_path))
    size = size or tuple(archive.archive_facts(model.directory)["image_shape"][1:])
    return ExportGraph(symbol, load_params(params), size, dynamic_size, PROBABILITIES)


def load(model: TrainedModel, ctx) -> ClassificationPredictor:
    symbol_path, params, shapes = archive.model_files(model.directory)
    facts = archive.archive_facts(model.directory)
    resize = archive.recorded_resize(model.directory, facts["image_shape"])
    symbol, activation = inference_graph(symbol_file(symbol_path))
    net = graph_block(symbol, params, ctx)
    return ClassificationPredictor(net, ctx, facts["image_shape"], activation, resize)
