"""MXNet 1.9.1's ONNX exporter (`mxnet.onnx`), the one module that touches its private parts.

`mx.onnx.export_model` takes no opset (it declares the installed onnx's newest, e.g. 22, while
its converters emit opset 12-13 operators: ReduceMean's axes moved to an input in 18, so such a
file is invalid) and lists every weight as a graph input. So this module drives its graph
builder (`MXNetGraph.create_onnx_graph_proto`) itself: the opset the converters were written for
is declared, `data` is the only input, and our converters (converters.py) stand in for the
exporter's for one export. Every converter is wrapped so that a failure names the operator and
the node, and the operators with no converter are named, all of them, before anything runs.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator

import mxnet as mx
import onnx
from mxnet.onnx.mx2onnx._export_onnx import MXNetGraph  # private: the converter registry
from onnx import helper

from sagemaker_cv.contract.errors import ClientError
from sagemaker_cv.tools.onnx_export.converters import OVERRIDES


def opsets() -> tuple[int, ...]:
    """The opsets MXNet's converters are written for (12 and 13 in MXNet 1.9.1)."""
    return tuple(sorted(_registry()))


def _registry() -> dict:
    import mxnet.onnx  # noqa: F401 - importing it registers the converters

    return MXNetGraph.registry_


def unconvertible(symbol: mx.sym.Symbol, opset: int) -> list[str]:
    """`operator (node)` for every node whose operator has no converter at `opset` or below."""
    known = set(OVERRIDES)
    for version, ops in _registry().items():
        if version <= opset:
            known.update(ops)
    nodes = json.loads(symbol.tojson())["nodes"]
    missing: dict[str, list[str]] = {}
    for node in nodes:
        if node["op"] != "null" and node["op"] not in known:
            missing.setdefault(node["op"], []).append(node["name"])
        elif (
            node["op"] == "_contrib_BilinearResize2D" and node.get("attrs", {}).get("mode", "size") != "size"
        ):
            # its converter says only "height, width or scale_height, scale_width cannot be 0"
            mode = node["attrs"]["mode"]
            missing.setdefault(
                f"{node['op']} in mode {mode!r} (only 'size', a size known at export)", []
            ).append(node["name"])
    return [
        f"{op} ({', '.join(names[:2])}{', ...' if len(names) > 2 else ''})" for op, names in missing.items()
    ]


def batchnorm_params(symbol: mx.sym.Symbol, params: dict) -> tuple[dict, list[str]]:
    """`params` as ONNX's BatchNormalization must see them to compute what MXNet's BatchNorm
    computes, and a note per layer changed.

    * `fix_gamma` (MXNet's default, left on by symbolic layers such as GluonCV's feature
      expander): MXNet scales by 1 whatever gamma holds; the exporter's converter passes gamma on.
    * A channel whose running variance + eps is below zero outputs NaN in MXNet (the square root
      of a negative number); each consumer being a ReLU, MXNet's ReLU (`x > 0 ? x : 0`) makes it
      0. ONNX's Relu keeps NaN, which the next convolution spreads to every channel. Such a
      channel is exported as a constant -1, 0 after the ReLU as in MXNet. A layer whose output
      goes anywhere but a ReLU is refused: there MXNet's own output would be NaN."""
    nodes = json.loads(symbol.tojson())["nodes"]
    consumers: dict[int, list[dict]] = {}
    for node in nodes:
        for entry in node["inputs"]:
            consumers.setdefault(entry[0], []).append(node)
    params, notes = dict(params), []
    for index, node in enumerate(nodes):
        names = [nodes[entry[0]]["name"] for entry in node["inputs"][1:5]]  # gamma, beta, mean, var
        if node["op"] != "BatchNorm" or len(names) < 4 or not all(n in params for n in names):
            continue
        attrs = node.get("attrs", {})
        gamma, beta, mean, var = (params[n].asnumpy().copy() for n in names)
        if attrs.get("fix_gamma", "True") in ("True", "true", "1"):
            gamma[:] = 1.0
        dead = var + float(attrs.get("eps", 1e-3)) < 0
        if dead.any():
            users = consumers.get(index, [])
            if not users or not all(_is_relu(u) for u in users):
                raise ClientError(
                    f"model: BatchNorm {node['name']} has {int(dead.sum())} channel(s) with a negative running "
                    f"variance (down to {var.min():.3g}), so MXNet itself computes NaN there and passes it on; "
                    "this model's outputs are not numbers and cannot be exported"
                )
            notes.append(
                f"{node['name']}: {int(dead.sum())} channel(s) with a negative running variance (down to "
                f"{var[dead].min():.3g}) give NaN in MXNet, which its next ReLU turns into 0; exported as a "
                "constant -1 (0 after the ReLU): ONNX runtimes would pass the NaN on"
            )
            # (x - 0) / sqrt(1e30) * 1 - 1 is -1 for any activation a float32 network produces.
            gamma[dead], beta[dead], mean[dead], var[dead] = 1.0, -1.0, 0.0, 1e30
        for name, value in zip(names, (gamma, beta, mean, var)):
            params[name] = mx.nd.array(value)
    return params, notes


def _is_relu(node: dict) -> bool:
    return node["op"] == "relu" or (
        node["op"] == "Activation" and node.get("attrs", {}).get("act_type") == "relu"
    )


def convert(
    symbol: mx.sym.Symbol,
    params: dict,
    shape: tuple[int, ...],
    opset: int,
    dynamic_batch: bool = False,
    dynamic_size: bool = False,
) -> onnx.ModelProto:
    """The ONNX model of `symbol` for float32 input `data` of `shape` (N, C, H, W); the batch
    and the height and width left open when asked."""
    supported = opsets()
    if opset not in supported:
        raise ClientError(
            f"--opset {opset}: MXNet {mx.__version__}'s ONNX exporter writes opsets "
            f"{', '.join(map(str, supported))} (box_nms needs 11 or later)"
        )
    missing = unconvertible(symbol, opset)
    if missing:
        raise ClientError(
            f"the graph cannot be converted to ONNX: MXNet {mx.__version__}'s exporter has no converter "
            f"for {'; '.join(missing)} (nothing was written)"
        )
    shape = tuple(shape)
    dynamic = (None if dynamic_batch else shape[0], shape[1], *((None, None) if dynamic_size else shape[2:]))
    used = set(symbol.list_inputs())
    weights = {k: v for k, v in params.items() if k in used}
    with _converters(), _quiet():
        graph = MXNetGraph().create_onnx_graph_proto(
            symbol,
            weights,
            [shape],
            [onnx.TensorProto.FLOAT],
            opset_version=opset,
            dynamic=dynamic_batch or dynamic_size,
            dynamic_input_shapes=[dynamic] if dynamic_batch or dynamic_size else None,
        )
    opset_ids = [helper.make_opsetid("", opset)]
    model = helper.make_model(graph, opset_imports=opset_ids, producer_name="sagemaker-cv")
    # The oldest IR version that carries this opset, so older runtimes load the file too.
    model.ir_version = helper.find_min_ir_version_for(opset_ids)
    _only_data_as_input(model)
    return model


def _only_data_as_input(model: onnx.ModelProto) -> None:
    """The exporter lists every weight as a graph input too; runtimes then treat them as inputs a
    caller may override (no constant folding). Keep `data` alone, and drop initializers no node
    reads (the exporter leaves some behind)."""
    initializers = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    del model.graph.input[:]
    model.graph.input.extend(inputs)
    read = {name for node in model.graph.node for name in node.input} | {o.name for o in model.graph.output}
    kept = [t for t in model.graph.initializer if t.name in read]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)


@contextlib.contextmanager
def _converters() -> Iterator[None]:
    """Our converters in place of the exporter's for the `with` block, and every converter's
    failure turned into a ClientError naming the operator and the node."""
    registry = _registry()
    saved = {version: dict(ops) for version, ops in registry.items()}
    try:
        for ops in registry.values():
            for op in list(ops) + list(OVERRIDES):
                ops[op] = _named(op, OVERRIDES.get(op, ops.get(op)))
        yield
    finally:
        for version, ops in saved.items():
            registry[version].clear()
            registry[version].update(ops)


def _named(op: str, convert):
    def wrapped(node, **kwargs):
        try:
            return convert(node, **kwargs)
        except (NotImplementedError, AttributeError, ValueError, KeyError, TypeError) as exc:
            raise ClientError(
                f"the graph cannot be converted to ONNX: operator {op} (node {node.get('name')}) "
                f"with {node.get('attrs', {})}: {' '.join(str(exc).split())} (nothing was written)"
            ) from None

    return wrapped


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The exporter logs through the root logger (e.g. box_nms's class-agnostic warning, which
    our converter makes untrue): keep it out of the user's output for the conversion."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)
