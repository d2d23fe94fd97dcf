"""Each algorithm's inference graph as the exporter takes it: an MXNet symbol with input `data`
(float32 NCHW RGB 0-255, normalised inside), its parameters, the input size, and the model's own
MXNet graph to check the export against.

* image-classification: the symbol and the last epoch's params; any input size converts, so
  `--size` picks one (default image_shape from model-shapes.json) and `--dynamic-size` leaves it open.
* object-detection: `model_algo_1` (this image's graph ends in box_nms; the built-in's training
  graph has MultiBox operators, which the exporter names as unconvertible). The graph divides the
  boxes by image_shape, so it answers right only at that size.
* semantic-segmentation: the network rebuilt from `model_algo-1` (GluonCV parameters, which the
  built-in writes too) and hyperparams.json, traced for any size as training exports it, then
  fixed at one size (`fixed_size`): MXNet's exporter converts only resizes to a known size.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import mxnet as mx
import numpy as np

from sagemaker_cv import algorithms
from sagemaker_cv.algorithms.trained import TrainedModel
from sagemaker_cv.contract.errors import ClientError
from sagemaker_cv.schema.kinds import Invalid


@dataclass
class Graph:
    algorithm: str
    symbol: mx.sym.Symbol  # what is converted
    params: dict[str, mx.nd.NDArray]  # its arguments and auxiliary states (no arg:/aux: prefix)
    size: tuple[int, int]  # (height, width) of the exported input
    dynamic_size: bool
    reference: Callable[[np.ndarray], np.ndarray]  # the model's own MXNet graph on an NCHW batch


def load(model: TrainedModel, size: tuple[int, int] | None, dynamic_size: bool) -> Graph:
    return LOADERS[model.algorithm.name](model, size, dynamic_size)


# ---- the model directory's files -------------------------------------------------------------------


def _file(directory: Path, pattern: str, what: str) -> Path:
    """The last (highest epoch) file matching `pattern`; a ClientError naming what is there instead."""
    found = sorted(p for p in directory.iterdir() if re.fullmatch(pattern, p.name))
    if not found:
        present = sorted(p.name for p in directory.iterdir())[:10]
        raise ClientError(f"model {directory}: no {what} (it holds {', '.join(present)})")
    return found[-1]


def _checkpoint(symbol_file: Path, params_file: Path) -> tuple[mx.sym.Symbol, dict]:
    try:
        symbol = mx.sym.load(str(symbol_file))
        saved = mx.nd.load(str(params_file))
    except mx.base.MXNetError as exc:
        raise ClientError(
            f"model: {symbol_file.name} or {params_file.name} cannot be read ({str(exc)[:200]})"
        ) from None
    return symbol, {k.split(":", 1)[-1]: v for k, v in saved.items()}


def _hyperparameter(model: TrainedModel, key: str):
    param = algorithms.get(model.algorithm.name).schema.by_name[key]
    raw = model.hyperparameters.get(key)
    if raw is None:
        if param.default is None:
            raise ClientError(f"model {model.directory}: hyperparams.json lacks {key}")
        return param.default
    try:
        return param.parse(raw)
    except Invalid as exc:
        raise ClientError(f"model {model.directory}: hyperparams.json {key}={raw!r}: {exc}") from None


def run_symbol(symbol: mx.sym.Symbol, params: dict) -> Callable[[np.ndarray], np.ndarray]:
    """MXNet's forward pass of `symbol` (inference mode) on an NCHW float32 batch of any shape."""

    def forward(batch: np.ndarray) -> np.ndarray:
        args = {k: params[k] for k in symbol.list_arguments() if k != "data"}
        aux = {k: params[k] for k in symbol.list_auxiliary_states()}
        args["data"] = mx.nd.array(batch)
        executor = symbol.bind(mx.cpu(), args, aux_states=aux, grad_req="null")
        return executor.forward(is_train=False)[0].asnumpy()

    return forward


# ---- per algorithm ------------------------------------------------------------------------------------


def _classification(model: TrainedModel, size, dynamic_size: bool) -> Graph:
    directory = model.directory
    symbol_file = directory / "image-classification-symbol.json"
    params_file = _file(directory, r"image-classification-\d{4}\.params", "image-classification-NNNN.params")
    symbol, params = _checkpoint(symbol_file, params_file)
    if size is None:
        try:
            shape = json.loads((directory / "model-shapes.json").read_text())[-1]["shape"]
            size = (int(shape[2]), int(shape[3]))
        except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
            raise ClientError(
                f"model {directory}: model-shapes.json cannot be read ({exc}); give the input size with --size H,W"
            ) from None
    return Graph(model.algorithm.name, symbol, params, size, dynamic_size, run_symbol(symbol, params))


def _detection(model: TrainedModel, size, dynamic_size: bool) -> Graph:
    directory = model.directory
    image_shape = _hyperparameter(model, "image_shape")
    why = (
        f"the detector's graph divides its boxes by its image_shape ({image_shape}), so it answers "
        f"right only for {image_shape}x{image_shape} inputs"
    )
    if dynamic_size:
        raise ClientError(f"object-detection: --dynamic-size: {why}; export without --dynamic-size")
    if size is not None and size != (image_shape, image_shape):
        raise ClientError(f"object-detection: --size {size[0]},{size[1]}: {why}; leave --size out")
    params_file = _file(directory, r"model_algo_1-0000\.params", "model_algo_1-0000.params")
    symbol, params = _checkpoint(directory / "model_algo_1-symbol.json", params_file)
    size = (image_shape, image_shape)
    return Graph(model.algorithm.name, symbol, params, size, False, run_symbol(symbol, params))


def _segmentation(model: TrainedModel, size, dynamic_size: bool) -> Graph:
    if dynamic_size:
        raise ClientError(
            "semantic-segmentation: --dynamic-size: the graph resizes its scores to the input's size "
            "(_contrib_BilinearResize2D, mode 'like'), which MXNet's ONNX exporter converts only for "
            "sizes known at export (mode 'size'); export at one size with --size H,W"
        )
    # The network serving rebuilds from model_algo-1 and hyperparams.json (a built-in's model has
    # no graph beside it, and the graph's resizes are fixed here anyway).
    from sagemaker_cv.algorithms.segmentation.predict import gluoncv_network, network_facts
    from sagemaker_cv.algorithms.segmentation.transforms import round_up8

    facts = network_facts(model)
    crop_size = round_up8(facts["crop_size"])
    whole = gluoncv_network(model, facts, mx.cpu())
    any_size = whole(mx.sym.var("data"))
    named = {p.name: p.data(mx.cpu()) for p in whole.collect_params().values()}
    params = {k: named[k] for k in any_size.list_inputs() if k != "data"}
    size = size or (crop_size, crop_size)
    fixed = fixed_size(any_size, params, size)
    return Graph(model.algorithm.name, fixed, params, size, False, run_symbol(any_size, params))


LOADERS = {
    "image-classification": _classification,
    "object-detection": _detection,
    "semantic-segmentation": _segmentation,
}


# ---- fixing the size of an any-size graph ------------------------------------------------------------


def fixed_size(symbol: mx.sym.Symbol, params: dict, size: tuple[int, int]) -> mx.sym.Symbol:
    """`symbol` for inputs of `size` only, in operators MXNet's exporter converts: every resize to
    another tensor's size (BilinearResize2D mode 'like') becomes a resize to that tensor's size
    at this input size, and every adaptive average pooling to n x n whose input divides into n x n
    becomes a plain average pooling (the same windows). The graph computes the same at this size."""
    shapes = _output_shapes(symbol, params, (1, 3, *size))
    graph = json.loads(symbol.tojson())
    nodes = graph["nodes"]
    for node in nodes:
        attrs = node.get("attrs", {})
        if node["op"] == "_contrib_BilinearResize2D" and attrs.get("mode") == "like":
            height, width = _shape(shapes, nodes, node["inputs"][1])[2:]
            node["attrs"] = {**attrs, "mode": "size", "height": str(height), "width": str(width)}
            node["inputs"] = node["inputs"][:1]
        elif node["op"] == "_contrib_AdaptiveAvgPooling2D":
            out = [int(v) for v in re.findall(r"\d+", attrs.get("output_size", "1"))] or [1]
            out = out * 2 if len(out) == 1 else out
            height, width = _shape(shapes, nodes, node["inputs"][0])[2:]
            if out == [1, 1]:
                continue  # global pooling: converted as it is
            if height % out[0] or width % out[1]:
                raise ClientError(
                    f"--size {size[0]},{size[1]}: the graph's _contrib_AdaptiveAvgPooling2D ({node['name']}) "
                    f"pools a {height}x{width} feature map to {out[0]}x{out[1]}, which MXNet's ONNX exporter "
                    f"converts only when the map divides evenly; choose a size whose feature map (1/8 of "
                    f"it) is a multiple of {out[0]} by {out[1]}, e.g. {size[0] // (8 * out[0]) * 8 * out[0] or 8 * out[0]},"
                    f"{size[1] // (8 * out[1]) * 8 * out[1] or 8 * out[1]}"
                )
            kernel = f"({height // out[0]}, {width // out[1]})"
            node["op"] = "Pooling"
            node["attrs"] = {
                "kernel": kernel,
                "stride": kernel,
                "pool_type": "avg",
                "pooling_convention": "valid",
            }
    return mx.sym.load_json(json.dumps(graph))


def _output_shapes(symbol: mx.sym.Symbol, params: dict, shape: tuple) -> dict[str, tuple]:
    internals = symbol.get_internals()
    known = {k: v.shape for k, v in params.items()}
    _, shapes, _ = internals.infer_shape(
        data=shape, **{k: v for k, v in known.items() if k in internals.list_inputs()}
    )
    return dict(zip(internals.list_outputs(), shapes))


def _shape(shapes: dict[str, tuple], nodes: list, entry: list) -> tuple:
    """The shape of a node's output `entry` ([node, output, version]), under the name
    get_internals() gives it: a variable's own name, `NAME_output` or `NAME_outputI`."""
    node = nodes[entry[0]]
    if node["op"] == "null":
        return shapes[node["name"]]
    name = f"{node['name']}_output"
    return shapes[name] if name in shapes else shapes[f"{name}{entry[1]}"]
