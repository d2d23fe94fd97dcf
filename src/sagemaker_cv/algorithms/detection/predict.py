"""Object detection inference, in the built-in's formats: an image in, its detections out.

* `application/json`: `{"prediction": [[class, score, xmin, ymin, xmax, ymax], ...]}`, best first,
  the corners relative (0-1) to the image as sent (the network sees it squashed to a square, so
  relative corners are the same in both), the graph's empty rows (class -1) dropped.
* `application/json;annotation=1`: the training JSON's form, in pixels of the image as sent:
  `{"image_size": [{"width", "height", "depth"}], "annotations": [{"class_id", "score", "left",
  "top", "width", "height"}, ...]}`.

The image goes through validation's transform: ImageDetRecordIter without augmentation decodes it
(BGR) and resizes it to image_shape x image_shape, bilinear, whatever its aspect ratio, as
`validation_resize` does here (tests compare the two).

Models of the built-in: it saves its training graph (MultiBoxTarget and a SoftmaxOutput fed by a
`label` input, its detections behind a MakeLoss), which AWS's examples turn into an inference graph
with MXNet's SSD `deploy.py`. The same is done here on load: the graph's MultiBoxDetection is kept
with its settings, fed by a softmax over the class predictions instead of the SoftmaxOutput, so
no label is needed; its input is raw RGB pixels, as AWS's examples feed the deployed graph.
"""

from __future__ import annotations

import json

import cv2
import numpy as np

from sagemaker_cv.algorithms.detection import archive
from sagemaker_cv.algorithms.detection.schema import SCHEMA
from sagemaker_cv.algorithms.inference import (
    DETECTIONS,
    ExportGraph,
    ImagePredictor,
    Prepared,
    decode,
    graph_block,
    load_params,
    symbol_file,
)
from sagemaker_cv.algorithms.trained import TrainedModel
from sagemaker_cv.contract.content_types import JSON
from sagemaker_cv.contract.errors import ClientError

ANNOTATIONS = "application/json;annotation=1"
DETECTION_OP = "_contrib_MultiBoxDetection"
TRAINING_OPS = ("_contrib_MultiBoxTarget", "SoftmaxOutput", "MakeLoss")


def validation_resize(image: np.ndarray, image_shape: int) -> np.ndarray:
    """ImageDetRecordIter's default augmenter in validation (resize_mode `force`, inter_method 1)."""
    return cv2.resize(image, (image_shape, image_shape), interpolation=cv2.INTER_LINEAR)


def found(rows: np.ndarray) -> np.ndarray:
    """The detections of one image's output rows, without the padding rows (class -1)."""
    return rows[rows[:, 0] >= 0]


class DetectionPredictor(ImagePredictor):
    accepts = (JSON, ANNOTATIONS)

    def __init__(self, net, ctx, image_shape: int, origin: str):
        super().__init__(net, ctx)
        self.image_shape = image_shape
        self.description = f"object detection ({origin}), input 3,{image_shape},{image_shape}"

    def prepare(self, body: bytes) -> Prepared:
        import mxnet as mx

        image = decode(body, cv2.IMREAD_COLOR)
        height, width = image.shape[:2]
        square = validation_resize(image, self.image_shape)[:, :, ::-1].transpose(2, 0, 1)
        return Prepared(mx.nd.array(square[None].astype(np.float32), ctx=self.ctx), width, height)

    def respond(self, output, image: Prepared, accept: str) -> bytes:
        rows = found(output[0])
        if accept == ANNOTATIONS:
            return json.dumps(annotations(rows, image.width, image.height)).encode()
        return json.dumps({"prediction": rows.tolist()}).encode()


def annotations(rows: np.ndarray, width: int, height: int) -> dict:
    """Detections as the training JSON writes objects: pixels of the image as sent, plus a score."""
    objects = []
    for cls, score, xmin, ymin, xmax, ymax in rows.tolist():
        left, top = round(xmin * width), round(ymin * height)
        objects.append(
            {
                "class_id": int(cls),
                "score": score,
                "left": left,
                "top": top,
                "width": round(xmax * width) - left,
                "height": round(ymax * height) - top,
            }
        )
    return {"image_size": [{"width": width, "height": height, "depth": 3}], "annotations": objects}


def inference_graph(symbol, name: str):
    """`symbol` as an inference graph with `data` as its only input: this image's graph as it is,
    the built-in's training graph rebuilt around its MultiBoxDetection. Which it was."""
    import mxnet as mx

    graph = json.loads(symbol.tojson())
    nodes = graph["nodes"]
    ops = {n["op"] for n in nodes}
    if not ops & set(TRAINING_OPS) and symbol.list_arguments()[0] == "data":
        return symbol, "this image's graph"
    detections = [n for n in nodes if n["op"] == DETECTION_OP]
    if len(detections) != 1:
        raise ClientError(
            f"model {name}: a training graph ({', '.join(sorted(ops & set(TRAINING_OPS)))}) with "
            f"{len(detections)} MultiBoxDetection layers; expected one, as SageMaker's built-in writes it"
        )
    node = detections[0]
    internals = symbol.get_internals()

    def output_of(index: int):
        return internals[f"{nodes[index]['name']}_output"]

    scores, boxes, anchors = (entry[0] for entry in node["inputs"])
    if nodes[scores]["op"] == "SoftmaxOutput":  # a loss whose forward pass is softmax over classes
        probabilities = mx.sym.softmax(output_of(nodes[scores]["inputs"][0][0]), axis=1)
    else:
        probabilities = output_of(scores)
    attrs = node.get("attrs", {})
    rebuilt = mx.sym.contrib.MultiBoxDetection(
        probabilities, output_of(boxes), output_of(anchors), name="detection", **attrs
    )
    if rebuilt.list_arguments()[0] != "data" or "label" in rebuilt.list_arguments():
        raise ClientError(
            f"model {name}: its MultiBoxDetection depends on inputs other than the image "
            f"({', '.join(a for a in rebuilt.list_arguments() if not a.endswith(('weight', 'bias')))[:200]})"
        )
    return rebuilt, "a graph of SageMaker's built-in"


def export_graph(model: TrainedModel, size: tuple[int, int] | None, dynamic_size: bool) -> ExportGraph:
    """The graph serving runs, for an exporter: it divides its boxes by image_shape, so it answers
    right at that size only (this image's graph ends in box_nms; a built-in's keeps its
    MultiBoxDetection, which the exporter names as having no converter)."""
    from sagemaker_cv.algorithms.facts import facts_from_hyperparameters

    # The size first: a request the graph cannot answer is refused whatever the files hold.
    facts = facts_from_hyperparameters(model.directory, SCHEMA, ("image_shape",))
    image_shape = facts.get("image_shape", SCHEMA.by_name["image_shape"].default)
    why = (
        f"the detector's graph divides its boxes by its image_shape ({image_shape}), so it answers "
        f"right only for {image_shape}x{image_shape} inputs"
    )
    if dynamic_size:
        raise ClientError(f"object-detection: --dynamic-size: {why}; export without --dynamic-size")
    if size is not None and size != (image_shape, image_shape):
        raise ClientError(f"object-detection: --size {size[0]},{size[1]}: {why}; leave --size out")
    symbol_path, params = archive.model_files(model.directory)
    symbol, _ = inference_graph(symbol_file(symbol_path), symbol_path.name)
    return ExportGraph(symbol, load_params(params), (image_shape, image_shape), False, DETECTIONS)


def load(model: TrainedModel, ctx) -> DetectionPredictor:
    symbol_path, params = archive.model_files(model.directory)
    facts = archive.archive_facts(model.directory)  # hyperparams.json, parsed as the schema parses it
    image_shape = facts.get("image_shape", SCHEMA.by_name["image_shape"].default)
    symbol, origin = inference_graph(symbol_file(symbol_path), symbol_path.name)
    return DetectionPredictor(graph_block(symbol, params, ctx), ctx, image_shape, origin)
