"""A model's inference graph as the exporter takes it: an MXNet symbol with input `data`
(float32 NCHW RGB 0-255, normalised inside), its parameters, the input size, and the model's own
MXNet graph to check the export against.

Each algorithm's predict module gives the graph serving runs (`export_graph`, named by the
record's `exporter`: which files, which sizes answer right); here it is fixed at one size
(`fixed_size`: MXNet's exporter converts only resizes to a known size) unless any size is meant.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass

import mxnet as mx
import numpy as np

from sagemaker_cv.algorithms.trained import TrainedModel
from sagemaker_cv.contract.errors import ClientError


@dataclass
class Graph:
    output: str  # the layout of its output (algorithms.inference), which parity compares by
    symbol: mx.sym.Symbol  # what is converted
    params: dict[str, mx.nd.NDArray]  # its arguments and auxiliary states (no arg:/aux: prefix)
    size: tuple[int, int]  # (height, width) of the exported input
    dynamic_size: bool
    reference: Callable[[np.ndarray], np.ndarray]  # the model's own MXNet graph on an NCHW batch


def load(model: TrainedModel, size: tuple[int, int] | None, dynamic_size: bool) -> Graph:
    """The model's inference graph (its algorithm's `exporter`), fixed at its size unless any size
    is meant; the reference is the graph as the model holds it."""
    exported = model.algorithm.export_graph(model, size, dynamic_size)
    symbol, params = exported.symbol, exported.params
    converted = symbol if exported.dynamic_size else fixed_size(symbol, params, exported.size)
    return Graph(
        exported.output, converted, params, exported.size, exported.dynamic_size, run_symbol(symbol, params)
    )


def run_symbol(symbol: mx.sym.Symbol, params: dict) -> Callable[[np.ndarray], np.ndarray]:
    """MXNet's forward pass of `symbol` (inference mode) on an NCHW float32 batch of any shape."""

    def forward(batch: np.ndarray) -> np.ndarray:
        args = {k: params[k] for k in symbol.list_arguments() if k != "data"}
        aux = {k: params[k] for k in symbol.list_auxiliary_states()}
        args["data"] = mx.nd.array(batch)
        executor = symbol.bind(mx.cpu(), args, aux_states=aux, grad_req="null")
        return executor.forward(is_train=False)[0].asnumpy()

    return forward


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
