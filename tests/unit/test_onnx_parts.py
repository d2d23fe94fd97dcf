"""ONNX export's parts on tiny graphs: our converters against MXNet's own operators, the size
fixing, the BatchNorm parameters, the named refusals, the parity comparisons, a parity failure
through the command line (exit 3, nothing written) and the settings.

Tier: fast (no training; each graph has a handful of nodes).
"""

from __future__ import annotations

import numpy as np
import pytest

from sagemaker_cv.contract.errors import ClientError
from sagemaker_cv.tools import onnx_export
from sagemaker_cv.tools.onnx_export.parity import TOLERANCES, compare_detections, compare_segmentation

mx = pytest.importorskip("mxnet")
ort = pytest.importorskip("onnxruntime")


def run_both(symbol, params, x, opset=13, **kwargs):
    """(onnxruntime's output, MXNet's output) of `symbol` on `x`."""
    from sagemaker_cv.tools.onnx_export import graphs, mx2onnx

    model = mx2onnx.convert(symbol, params, x.shape, opset, **kwargs)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    ours = session.run(None, {"data": x})[0]
    return ours, graphs.run_symbol(symbol, params)(x)


def detection_rows(rng, batch=2, rows=60, classes=3, ties=False):
    ids = rng.integers(-1, classes, (batch, rows, 1)).astype(np.float32)
    scores = rng.uniform(0, 1, (batch, rows, 1)).astype(np.float32)
    if ties:  # saturated softmax scores: many exactly equal
        scores = np.round(scores * 4) / 4
    corner = rng.uniform(0, 80, (batch, rows, 2))
    size = rng.uniform(5, 40, (batch, rows, 2))
    return np.concatenate([ids, scores, corner, corner + size], -1).astype(np.float32)


@pytest.mark.parametrize(
    "attrs",
    [
        {"topk": 20},  # the detector's case: per class, fewer kept than are valid
        {"topk": 400},  # topk above the row count
        {"topk": -1, "force_suppress": True},  # class-agnostic
        {"topk": 10, "background_id": 0},
    ],
)
@pytest.mark.parametrize("ties", [False, True])
def test_box_nms_converts_to_what_mxnet_computes(attrs, ties):
    """MXNet's own converter suppresses across classes and caps per class: it fails this."""
    rows = detection_rows(np.random.default_rng(len(str(attrs)) + ties), ties=ties)
    data = mx.sym.var("data")
    symbol = mx.sym.contrib.box_nms(
        data, overlap_thresh=0.45, valid_thresh=0.01, id_index=0, score_index=1, coord_start=2, **attrs
    )
    symbol = mx.sym.reshape(symbol, shape=(0, 0, 0, 6))  # the converter takes any leading shape
    ours, theirs = run_both(symbol, {}, rows[:, None])
    np.testing.assert_array_equal(ours, theirs)


def test_greater_equal_scalar_converts():
    x = np.array([[[[-1.0, 0.0, 0.5, 2.0]]]], dtype=np.float32)
    symbol = mx.sym.var("data") >= 0.5
    ours, theirs = run_both(symbol, {}, x)
    np.testing.assert_array_equal(ours, theirs)
    assert ours.dtype == np.float32


def pooled_resized():
    """A segmentation-like graph: features, adaptive pooling to 2x2, resized back 'like' them."""
    data = mx.sym.var("data")
    features = mx.sym.Convolution(data, num_filter=4, kernel=(3, 3), stride=(2, 2), pad=(1, 1), name="conv")
    pooled = mx.sym.contrib.AdaptiveAvgPooling2D(features, output_size=2)
    up = mx.sym.contrib.BilinearResize2D(pooled, features, mode="like")
    out = mx.sym.contrib.BilinearResize2D(features + up, data, mode="like")
    rng = np.random.default_rng(0)
    params = {"conv_weight": mx.nd.array(rng.normal(size=(4, 3, 3, 3))), "conv_bias": mx.nd.zeros(4)}
    return out, params


def test_fixed_size_graph_computes_the_same_and_converts():
    from sagemaker_cv.tools.onnx_export.graphs import fixed_size

    symbol, params = pooled_resized()
    fixed = fixed_size(symbol, params, (16, 24))
    ops = [n["op"] for n in __import__("json").loads(fixed.tojson())["nodes"]]
    assert "_contrib_AdaptiveAvgPooling2D" not in ops and "Pooling" in ops
    x = np.random.default_rng(1).uniform(0, 255, (1, 3, 16, 24)).astype(np.float32)
    from sagemaker_cv.tools.onnx_export.graphs import run_symbol

    np.testing.assert_allclose(
        run_symbol(fixed, params)(x), run_symbol(symbol, params)(x), rtol=1e-5, atol=1e-3
    )
    ours, _ = run_both(fixed, params, x)
    np.testing.assert_allclose(ours, run_symbol(symbol, params)(x), rtol=1e-4, atol=1e-2)


def test_a_pooling_that_does_not_divide_is_refused_naming_the_operator():
    from sagemaker_cv.tools.onnx_export.graphs import fixed_size

    symbol, params = pooled_resized()
    with pytest.raises(
        ClientError, match=r"_contrib_AdaptiveAvgPooling2D .* 7x12 feature map to 2x2.*e\.g\. "
    ):
        fixed_size(symbol, params, (14, 24))


def test_any_size_resize_is_refused_naming_the_operator():
    data = mx.sym.var("data")
    symbol = mx.sym.contrib.BilinearResize2D(
        mx.sym.Pooling(data, kernel=(2, 2), stride=(2, 2)), data, mode="like"
    )
    with pytest.raises(
        ClientError,
        match=r"no converter for _contrib_BilinearResize2D in mode 'like' \(only 'size', a size known at export\)",
    ):
        run_both(symbol, {}, np.zeros((1, 3, 16, 16), np.float32))


def test_an_operator_without_converter_is_named_and_nothing_runs():
    data = mx.sym.var("data")
    anchors = mx.sym.contrib.MultiBoxPrior(data, sizes=(0.5,), name="anchors")
    with pytest.raises(
        ClientError, match=r"no converter for _contrib_MultiBoxPrior \(anchors\).*nothing was written"
    ):
        run_both(anchors, {}, np.zeros((1, 3, 16, 16), np.float32))


def test_opset_outside_the_exporters_range_is_refused():
    with pytest.raises(ClientError, match=r"--opset 11: .* writes opsets 12, 13"):
        run_both(mx.sym.var("data") * 2, {}, np.zeros((1, 3, 4, 4), np.float32), opset=11)


def batchnorm_graph(consumer: str, fix_gamma: bool):
    data = mx.sym.var("data")
    bn = mx.sym.BatchNorm(data, fix_gamma=fix_gamma, eps=1e-3, name="bn")
    out = mx.sym.relu(bn) if consumer == "relu" else bn * 2
    out = mx.sym.Convolution(out, num_filter=2, kernel=(1, 1), no_bias=True, name="conv")
    params = {
        "bn_gamma": mx.nd.array([0.5, 2.0, 3.0]),
        "bn_beta": mx.nd.array([0.1, 0.2, 0.3]),
        "bn_moving_mean": mx.nd.array([10.0, 100.0, 50.0]),
        "bn_moving_var": mx.nd.array([4.0, -0.02, 9.0]),  # channel 1: NaN in MXNet
        "conv_weight": mx.nd.ones((2, 3, 1, 1)),
    }
    return mx.sym.Activation(out, act_type="relu") if consumer == "relu" else out, params


@pytest.mark.parametrize("fix_gamma", [False, True])
def test_batchnorm_parameters_make_onnx_compute_what_mxnet_computes(fix_gamma):
    from sagemaker_cv.tools.onnx_export.mx2onnx import batchnorm_params

    symbol, params = batchnorm_graph("relu", fix_gamma)
    x = np.random.default_rng(0).uniform(0, 255, (1, 3, 4, 4)).astype(np.float32)
    fixed, notes = batchnorm_params(symbol, params)
    assert len(notes) == 1 and "bn: 1 channel(s) with a negative running variance" in notes[0]
    ours, theirs = run_both(symbol, fixed, x)
    assert np.isfinite(theirs).all()
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-3)
    unfixed, _ = run_both(symbol, params, x)  # the exporter's own parameters: NaN, or gamma used
    assert np.isnan(unfixed).any() or not np.allclose(unfixed, theirs, rtol=1e-5, atol=1e-3)


def test_a_negative_variance_that_reaches_more_than_a_relu_is_refused():
    from sagemaker_cv.tools.onnx_export.mx2onnx import batchnorm_params

    symbol, params = batchnorm_graph("scale", False)
    with pytest.raises(
        ClientError, match=r"BatchNorm bn has 1 channel\(s\) with a negative running variance"
    ):
        batchnorm_params(symbol, params)


def row(cls, score, box):
    return [cls, score, *box]


def test_detections_pair_rows_whatever_their_order():
    mxnet_rows = np.array(
        [[row(0, 0.9, [0.1, 0.1, 0.5, 0.5]), row(1, 0.5, [0.2, 0.2, 0.4, 0.4]), row(-1, -1, [-1] * 4)]]
    )
    swapped = mxnet_rows[:, [1, 0, 2]] + np.array([0, 2e-5, 1e-5, 0, 0, 0], dtype=np.float64)
    result = compare_detections(swapped, mxnet_rows, "x")
    assert not result.problems and result.measures["rows"] == 2
    assert result.measures["max |dscore|"] == pytest.approx(2e-5)


@pytest.mark.parametrize(
    "at, value, problem",
    [
        ((0, 0, 0), 2, "MXNet's class 0 score 0.9000"),  # another class
        ((0, 0, 2), 0.11, "has no ONNX counterpart"),  # a corner off by 1% of the side
        ((0, 2), row(2, 0.3, [0, 0, 1, 1]), "ONNX's class 2 score 0.3000"),  # a row MXNet does not have
    ],
)
def test_detections_that_differ_are_named(at, value, problem):
    theirs = np.array(
        [[row(0, 0.9, [0.1, 0.1, 0.5, 0.5]), row(1, 0.5, [0.2, 0.2, 0.4, 0.4]), row(-1, -1, [-1] * 4)]]
    )
    ours = theirs.copy()
    ours[at] = value
    result = compare_detections(ours, theirs, "x")
    assert result.problems and problem in result.problems[0]


def test_segmentation_agreement_below_the_tolerance_fails():
    theirs = np.zeros((1, 2, 10, 100), np.float32)
    theirs[:, 0] = 0.6
    theirs[:, 1] = 0.4
    ours = theirs.copy()
    ours[0, :, 0, 0] = [0.4, 0.6]  # one pixel of 1000 flips: 0.999 agreement, at the tolerance
    assert not compare_segmentation(ours, theirs, "x").problems
    ours[0, :, 0, 1] = [0.4, 0.6]
    result = compare_segmentation(ours, theirs, "x")
    assert result.measures["argmax agreement"] == pytest.approx(0.998)
    assert f"< {TOLERANCES['agreement']}" in result.problems[0]


@pytest.mark.parametrize("text, size", [("224,224", (224, 224)), ("300", (300, 300)), (" 48, 64 ", (48, 64))])
def test_size(text, size):
    assert onnx_export.parse_size(text) == size


@pytest.mark.parametrize("text", ["", "a,b", "1,2,3", "8,8", "-32,32", "5000,32"])
def test_bad_size_is_named(text):
    with pytest.raises(ClientError, match=rf"--size {text!r}: expected"):
        onnx_export.parse_size(text)


@pytest.mark.parametrize(
    "raw, enabled", [("", False), ("0", False), ("false", False), ("1", True), ("true", True)]
)
def test_job_export_setting(raw, enabled):
    assert onnx_export.JobExport.from_env({onnx_export.ENV: raw}).enabled is enabled
    assert onnx_export.JobExport.from_env({}).enabled is False


def test_bad_job_export_setting_is_named():
    with pytest.raises(ClientError, match=r"SAGEMAKER_CV_EXPORT_ONNX='yes please': expected 1"):
        onnx_export.JobExport.from_env({onnx_export.ENV: "yes please"})


def test_a_run_clears_the_file_the_export_writes():
    from sagemaker_cv.training import runner

    assert onnx_export.MODEL_FILE in runner.EXPORTS


def test_job_pictures_come_from_the_validation_channel_first(tmp_path):
    from sagemaker_cv.contract.paths import MLPaths

    paths = MLPaths(tmp_path)
    for channel, names in {"train": ["a.jpg"], "validation": ["c.PNG", "b.jpg", "d.txt", "e.png"]}.items():
        paths.channel(channel).mkdir(parents=True)
        for name in names:
            (paths.channel(channel) / name).write_bytes(b"x")
    assert [p.name for p in onnx_export.job_pictures(paths)] == ["b.jpg", "c.PNG"]
    assert onnx_export.job_pictures(MLPaths(tmp_path / "none")) == ()


def tiny_classifier(directory):
    """A model directory as an image-classification job writes it, of a few-node network (one
    convolution, global pooling, a 3-class dense layer): exports in well under a second."""
    import json

    data = mx.sym.var("data")
    features = mx.sym.Convolution(data, num_filter=4, kernel=(3, 3), pad=(1, 1), name="conv0")
    pooled = mx.sym.Pooling(mx.sym.relu(features), kernel=(1, 1), global_pool=True, pool_type="avg")
    logits = mx.sym.FullyConnected(mx.sym.flatten(pooled), num_hidden=3, name="dense0")
    symbol = mx.sym.SoftmaxOutput(logits, name="softmax")
    rng = np.random.default_rng(0)
    params = {
        "arg:conv0_weight": rng.normal(0, 0.05, (4, 3, 3, 3)),
        "arg:conv0_bias": np.zeros(4),
        "arg:dense0_weight": rng.normal(0, 0.05, (3, 4)),
        "arg:dense0_bias": np.zeros(3),
    }
    directory.mkdir()
    symbol.save(str(directory / "image-classification-symbol.json"))
    mx.nd.save(
        str(directory / "image-classification-0001.params"), {k: mx.nd.array(v) for k, v in params.items()}
    )
    (directory / "model-shapes.json").write_text(json.dumps([{"name": "data", "shape": [1, 3, 16, 16]}]))
    return directory


def test_a_parity_failure_exits_3_and_leaves_no_file(tmp_path, monkeypatch, capsys):
    """An exporter fault (here: the converted graph's output bias shifted after conversion) is
    caught by the parity check in onnxruntime: exit 3, the difference named, nothing written."""
    import tempfile

    import onnx
    from onnx import numpy_helper

    from sagemaker_cv.cli import main
    from sagemaker_cv.tools.onnx_export import mx2onnx

    model = tiny_classifier(tmp_path / "model")
    out = tmp_path / "out"
    out.mkdir()
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # where the export unpacks and works
    assert main(["export-onnx", "--model", str(model), "--output", str(out / "good.onnx")]) == 0
    assert "max |dp|" in capsys.readouterr().out and (out / "good.onnx").is_file()

    convert, shifted = mx2onnx.convert, []

    def faulty_convert(*args, **kwargs):
        converted = convert(*args, **kwargs)
        for i, tensor in enumerate(converted.graph.initializer):
            if tensor.name == "dense0_bias":
                bias = numpy_helper.to_array(tensor) + np.array([0.0, 0.0, 0.01], np.float32)
                converted.graph.initializer[i].CopyFrom(numpy_helper.from_array(bias, tensor.name))
                shifted.append(tensor.name)
        onnx.checker.check_model(converted)  # still a valid file: only parity can tell
        return converted

    monkeypatch.setattr(mx2onnx, "convert", faulty_convert)
    code = main(["export-onnx", "--model", str(model), "--output", str(out / "bad.onnx")])
    captured = capsys.readouterr()
    assert shifted == ["dense0_bias"]
    assert code == 3, captured.err
    assert captured.err.startswith("sagemaker-cv export-onnx: parity failed: ONNX export of ")
    assert "onnxruntime's outputs differ from MXNet's (random 1: max |dp| " in captured.err
    assert f"> {TOLERANCES['probability']}" in captured.err and "nothing was written" in captured.err
    assert "Wrote" not in captured.out
    assert sorted(p.name for p in out.iterdir()) == ["good.onnx"]  # no bad.onnx, no temporary file
    assert list(scratch.iterdir()) == []
