"""ONNX converters for the operators of our inference graphs that MXNet 1.9.1's exporter gets
wrong or lacks. They are lent to the exporter for one export at a time (`mx2onnx.converted`).

* `_contrib_box_nms`: MXNet's own converter makes every box suppress every other box whatever its
  class (it warns: "boxes of different categories will NOT be exempted from suppression") and
  reads `topk` as ONNX's per-class output cap, where MXNet keeps the `topk` best-scoring boxes
  before suppressing. The detector's graph asks for per-class suppression of the 400 best, so
  that converter would change its detections. This one does what MXNet's operator does
  (src/operator/contrib/bounding_box-inl.h): rows scoring above `valid_thresh` (and, when ids
  are given, not of class `background_id`), the `topk` best
  of them in a stable descending order, greedy suppression above `overlap_thresh` between rows of
  one class, the kept rows first in score order and every other row -1.
* `_greater_equal_scalar` (the detector's `ids >= 0`): no converter in MXNet 1.9.1.

A converter gets MXNet's node (a dict from the symbol's JSON) and the exporter's keyword arguments;
it returns ONNX nodes whose last output carries the node's name, and adds its constants to
`kwargs["initializer"]`.
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper

FLOAT = TensorProto.FLOAT
INT64 = TensorProto.INT64


class _Nodes:
    """Builds one converter's nodes: every name is prefixed with the MXNet node's."""

    def __init__(self, node: dict, kwargs: dict):
        self.name = node["name"]
        lookup = kwargs["outputs_lookup"]
        self.inputs = [lookup[i][j].name for i, j, *_ in node["inputs"]]
        self.dtypes = [lookup[i][j].dtype for i, j, *_ in node["inputs"]]
        self.attrs = node.get("attrs", {})
        self.initializer = kwargs["initializer"]
        self.nodes: list = []
        self.count = 0

    def const(self, value, dtype=np.int64) -> str:
        self.count += 1
        name = f"{self.name}_c{self.count}"
        self.initializer.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type: str, inputs: list[str], outputs: int = 1, out: str | None = None, **attrs):
        names = []
        for k in range(outputs):
            self.count += 1
            names.append(out if out and k == 0 else f"{self.name}_t{self.count}")
        self.nodes.append(helper.make_node(op_type, inputs, names, name=names[0], **attrs))
        return names[0] if outputs == 1 else names

    def column(self, rows: str, index: int, width: int = 1) -> str:
        """rows[:, :, index:index + width]"""
        return self.op("Slice", [rows, self.const([index]), self.const([index + width]), self.const([2])])


def box_nms(node: dict, **kwargs) -> list:
    g = _Nodes(node, kwargs)
    a = g.attrs
    if np.dtype(g.dtypes[0]) != np.float32:
        raise NotImplementedError(f"_contrib_box_nms on {np.dtype(g.dtypes[0])} data (float32 only)")
    if a.get("in_format", "corner") != a.get("out_format", "corner"):
        raise NotImplementedError("_contrib_box_nms with in_format != out_format")
    valid_thresh = float(a.get("valid_thresh", 0))
    overlap = float(a.get("overlap_thresh", 0.5))
    topk = int(a.get("topk", -1))
    coord, score_at, id_at = (
        int(a.get("coord_start", 2)),
        int(a.get("score_index", 1)),
        int(a.get("id_index", -1)),
    )
    per_class = id_at >= 0 and a.get("force_suppress", "False") not in ("True", "true", "1")
    background_id = float(a.get("background_id", -1))

    shape = g.op("Shape", [g.inputs[0]])
    last2 = g.op("Slice", [shape, g.const([-2]), g.const([np.iinfo(np.int64).max])])
    rows = g.op("Reshape", [g.inputs[0], g.op("Concat", [g.const([-1]), last2], axis=0)])  # (B, N, W)
    n = g.op("Slice", [shape, g.const([-2]), g.const([-1])])
    k = n if topk < 0 else g.op("Min", [n, g.const([topk])])
    scores = g.op("Reshape", [g.column(rows, score_at), g.const([0, -1])])  # (B, N)
    valid = g.op("Greater", [scores, g.const([valid_thresh], np.float32)])
    if id_at >= 0:  # MXNet 1.9 drops the rows of class background_id (-1 unless set) when ids are given
        ids = g.op("Reshape", [g.column(rows, id_at), g.const([0, -1])])
        background = g.op("Equal", [ids, g.const([background_id], np.float32)])
        valid = g.op("And", [valid, g.op("Not", [background])])
    masked = g.op("Where", [valid, scores, g.const([-np.inf], np.float32)])
    # ONNX's TopK breaks ties by the lower index, as MXNet's stable sort does.
    best, at = g.op("TopK", [masked, k], outputs=2, axis=-1, largest=1, sorted=1)  # (B, K)
    candidates = g.op("GatherND", [rows, g.op("Reshape", [at, g.const([0, -1, 1])])], batch_dims=1)
    chosen = g.op("Cast", [g.op("Greater", [best, g.const([valid_thresh], np.float32)])], to=FLOAT)
    # NonMaxSuppression sees ranks (K for the best row down to 1) rather than scores: the order
    # of equal scores stays the one MXNet uses, and no score sits on its threshold.
    k_float = g.op("Cast", [k], to=FLOAT)
    position = g.op(
        "Range", [g.const(0.0, np.float32), g.op("Reshape", [k_float, g.const([])]), g.const(1.0, np.float32)]
    )
    rank = g.op("Mul", [g.op("Sub", [k_float, position]), chosen])  # (B, K); 0: not a candidate
    if per_class:
        ids = g.op("Cast", [g.op("Reshape", [g.column(candidates, id_at), g.const([0, -1])])], to=INT64)
        ids = g.op("Where", [g.op("Cast", [chosen], to=TensorProto.BOOL), ids, g.const([0])])
        ids = g.op("Sub", [ids, g.op("ReduceMin", [ids], keepdims=0)])  # classes from 0
        depth = g.op("Add", [g.op("ReduceMax", [ids], keepdims=0), g.const(1)])
        one_hot = g.op("OneHot", [ids, depth, g.const([0.0, 1.0], np.float32)], axis=-1)  # (B, K, C)
        class_scores = g.op("Mul", [one_hot, g.op("Reshape", [rank, g.const([0, -1, 1])])])
    else:
        class_scores = g.op("Reshape", [rank, g.const([0, -1, 1])])
    class_scores = g.op("Transpose", [class_scores], perm=[0, 2, 1])  # (B, C, K)
    boxes = g.column(candidates, coord, 4)
    center = 0 if a.get("in_format", "corner") == "corner" else 1
    selected = g.op(
        "NonMaxSuppression",
        [boxes, class_scores, k, g.const([overlap], np.float32), g.const([0.5], np.float32)],
        center_point_box=center,
    )  # (M, 3): batch, class, candidate
    batch_and_row = g.op("Gather", [selected, g.const([0, 2])], axis=1)
    count = g.op("Slice", [g.op("Shape", [selected]), g.const([0]), g.const([1])])
    ones = g.op("ConstantOfShape", [count], value=helper.make_tensor("one", FLOAT, [1], [1.0]))
    zeros = g.op(
        "ConstantOfShape", [g.op("Shape", [best])], value=helper.make_tensor("zero", FLOAT, [1], [0.0])
    )
    kept = g.op("ScatterND", [zeros, batch_and_row, ones])  # (B, K): 1 where kept
    # Kept rows first, in score order: sort by rank among the kept, every other row after them.
    order_key = g.op("Mul", [kept, g.op("Sub", [k_float, position])])
    key, order = g.op("TopK", [order_key, k], outputs=2, axis=-1, largest=1, sorted=1)
    ordered = g.op("GatherND", [candidates, g.op("Reshape", [order, g.const([0, -1, 1])])], batch_dims=1)
    keep_row = g.op("Reshape", [g.op("Greater", [key, g.const([0.0], np.float32)]), g.const([0, -1, 1])])
    out = g.op("Where", [keep_row, ordered, g.const([-1.0], np.float32)])  # (B, K, W)
    width = g.op("Slice", [shape, g.const([-1]), g.const([np.iinfo(np.int64).max])])
    batch = g.op("Slice", [g.op("Shape", [rows]), g.const([0]), g.const([1])])
    fill_shape = g.op("Concat", [batch, g.op("Sub", [n, k]), width], axis=0)
    fill = g.op("ConstantOfShape", [fill_shape], value=helper.make_tensor("minus_one", FLOAT, [1], [-1.0]))
    # Output 0 of MXNet's two (the data and a record for the gradient): named as MXNet names it.
    g.op("Reshape", [g.op("Concat", [out, fill], axis=1), shape], out=g.name + "0")
    return g.nodes


def greater_equal_scalar(node: dict, **kwargs) -> list:
    g = _Nodes(node, kwargs)
    dtype = np.dtype(g.dtypes[0])
    scalar = float(g.attrs.get("scalar", 0))
    compared = g.op("GreaterOrEqual", [g.inputs[0], g.const([scalar], dtype)])
    g.op("Cast", [compared], to=helper.np_dtype_to_tensor_dtype(dtype), out=g.name)
    return g.nodes


#: MXNet operator -> our converter, used in place of (or where there is no) MXNet's
OVERRIDES = {"_contrib_box_nms": box_nms, "_greater_equal_scalar": greater_equal_scalar}
