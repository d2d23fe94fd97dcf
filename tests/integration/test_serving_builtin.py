"""Models in the files SageMaker's built-ins write load and predict as those files' graphs do; those
that cannot load end with a ClientError that says why (and a server that stops, exit 3).

The built-ins' files are made here to their formats, small: the classifier's symbolic network ending
in SoftmaxOutput; the detector's training graph as MXNet's SSD example builds it (MultiBoxTarget,
SoftmaxOutput, MakeLoss outputs around MultiBoxDetection); the segmenter's `model_algo-1` alone.

Tier: fast (small graphs in-process; one server start).
"""

from __future__ import annotations

import json
import shutil

import mxnet as mx
import numpy as np
import pytest
from serving_helpers import encoded, picture, start

from sagemaker_cv.algorithms.trained import open_model
from sagemaker_cv.contract.errors import ClientError

pytestmark = pytest.mark.fast


def save_checkpoint(sym, prefix, epoch, shapes: dict):
    """Random parameters for `sym`, saved as MXNet's model.save_checkpoint writes them."""
    labels = [(k, v) for k, v in shapes.items() if k != "data"]
    module = mx.mod.Module(sym, data_names=["data"], label_names=[k for k, _ in labels] or None)
    module.bind(data_shapes=[("data", shapes["data"])], label_shapes=labels or None)
    mx.random.seed(0)
    module.init_params(mx.init.Uniform(0.1))
    module.save_checkpoint(str(prefix), epoch)
    return module


def predictor_of(directory):
    model = open_model(directory, directory.parent / "unpacked")
    return model.algorithm.load_predictor(model, mx.cpu())


# ---- image classification ------------------------------------------------------------------------------


def builtin_classifier(classes: int):
    data = mx.sym.var("data")
    x = mx.sym.BatchNorm(data, fix_gamma=True, name="bn_data")  # the built-in's ResNet takes raw pixels
    x = mx.sym.Convolution(
        x, num_filter=8, kernel=(3, 3), stride=(2, 2), pad=(1, 1), no_bias=True, name="conv0"
    )
    x = mx.sym.Activation(mx.sym.BatchNorm(x, name="bn0"), act_type="relu")
    x = mx.sym.Flatten(mx.sym.Pooling(x, global_pool=True, kernel=(7, 7), pool_type="avg"))
    return mx.sym.SoftmaxOutput(mx.sym.FullyConnected(x, num_hidden=classes, name="fc1"), name="softmax")


def test_the_builtin_classifier_loads_and_predicts_as_its_graph(tmp_path):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    module = save_checkpoint(
        builtin_classifier(4),
        model_dir / "image-classification",
        3,
        {"data": (1, 3, 32, 32), "softmax_label": (1,)},
    )
    (model_dir / "model-shapes.json").write_text(json.dumps([{"shape": [16, 3, 32, 32], "name": "data"}]))
    predictor = predictor_of(model_dir)
    body = encoded(picture(40, 48))
    served = np.array(json.loads(predictor(body, "application/json")))
    x = predictor.prepare(body).x
    module.forward(mx.io.DataBatch([x], [mx.nd.zeros((1,))]), is_train=False)
    np.testing.assert_allclose(served, module.get_outputs()[0].asnumpy()[0], rtol=1e-5, atol=1e-7)
    assert "softmax outputs" in predictor.description


def test_a_graph_that_is_no_classifier_is_refused(tmp_path):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    sym = builtin_classifier(4).get_children()[0]  # ends in FullyConnected
    save_checkpoint(sym, model_dir / "image-classification", 1, {"data": (1, 3, 32, 32)})
    (model_dir / "model-shapes.json").write_text(json.dumps([{"shape": [1, 3, 32, 32], "name": "data"}]))
    with pytest.raises(ClientError, match="ends in FullyConnected, not in softmax"):
        predictor_of(model_dir)


# ---- object detection -----------------------------------------------------------------------------------


def ssd_training_graph(classes: int, detection: bool = True):
    """MXNet's SSD example's training symbol (symbol_builder.get_symbol_train), two small layers."""
    data, label = mx.sym.var("data"), mx.sym.var("label")
    x = mx.sym.Activation(
        mx.sym.Convolution(data, num_filter=8, kernel=(4, 4), stride=(4, 4), name="c1"), act_type="relu"
    )
    maps = [x, mx.sym.Convolution(x, num_filter=8, kernel=(3, 3), stride=(2, 2), pad=(1, 1), name="c2")]
    locs, clss, anchors = [], [], []
    for i, (feature, size) in enumerate(zip(maps, (0.2, 0.5))):
        ratios = (1, 2, 0.5)
        count = len(ratios) + 1
        loc = mx.sym.Convolution(feature, num_filter=count * 4, kernel=(3, 3), pad=(1, 1), name=f"loc{i}")
        locs.append(mx.sym.Flatten(mx.sym.transpose(loc, axes=(0, 2, 3, 1))))
        cls = mx.sym.Convolution(
            feature, num_filter=count * (classes + 1), kernel=(3, 3), pad=(1, 1), name=f"cls{i}"
        )
        clss.append(mx.sym.Flatten(mx.sym.transpose(cls, axes=(0, 2, 3, 1))))
        prior = mx.sym.contrib.MultiBoxPrior(feature, sizes=(size, size * 1.4), ratios=ratios, clip=False)
        anchors.append(mx.sym.Flatten(prior))
    loc_preds = mx.sym.Concat(*locs, dim=1, name="multibox_loc_pred")
    cls_preds = mx.sym.Reshape(mx.sym.Concat(*clss, dim=1), shape=(0, -1, classes + 1))
    cls_preds = mx.sym.transpose(cls_preds, axes=(0, 2, 1), name="multibox_cls_pred")
    anchor_boxes = mx.sym.Reshape(mx.sym.Concat(*anchors, dim=1), shape=(0, -1, 4), name="multibox_anchors")
    loc_target, loc_mask, cls_target = mx.sym.contrib.MultiBoxTarget(
        anchor_boxes,
        label,
        cls_preds,
        overlap_threshold=0.5,
        negative_mining_ratio=3,
        variances=(0.1, 0.1, 0.2, 0.2),
    )
    cls_prob = mx.sym.SoftmaxOutput(
        cls_preds,
        cls_target,
        ignore_label=-1,
        use_ignore=True,
        multi_output=True,
        normalization="valid",
        name="cls_prob",
    )
    loc_loss = mx.sym.MakeLoss(
        mx.sym.smooth_l1(loc_mask * (loc_preds - loc_target), scalar=1.0), name="loc_loss"
    )
    cls_label = mx.sym.MakeLoss(cls_target, grad_scale=0, name="cls_label")
    outputs = [cls_prob, loc_loss, cls_label]
    if detection:
        det = mx.sym.contrib.MultiBoxDetection(
            cls_prob,
            loc_preds,
            anchor_boxes,
            nms_threshold=0.45,
            nms_topk=400,
            variances=(0.1, 0.1, 0.2, 0.2),
            name="detection",
        )
        outputs.append(mx.sym.MakeLoss(det, grad_scale=0, name="det_out"))
    return mx.sym.Group(outputs)


def builtin_detector(tmp_path, detection=True):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    shapes = {"data": (1, 3, 300, 300), "label": (1, 2, 5)}
    module = save_checkpoint(ssd_training_graph(3, detection), model_dir / "model_algo_1", 0, shapes)
    hp = {"num_classes": "3", "image_shape": "300", "base_network": "resnet-50", "mini_batch_size": "16"}
    (model_dir / "hyperparams.json").write_text(json.dumps(hp))
    return model_dir, module


def test_the_builtin_detector_loads_and_predicts_as_its_training_graph(tmp_path):
    model_dir, module = builtin_detector(tmp_path)
    predictor = predictor_of(model_dir)
    assert "SageMaker's built-in" in predictor.description
    body = encoded(picture(150, 220, seed=7))
    rows = np.array(json.loads(predictor(body, "application/json"))["prediction"])
    # The training graph itself, fed a label of empty rows: its last output is MultiBoxDetection's.
    x = predictor.prepare(body).x
    module.forward(mx.io.DataBatch([x], [mx.nd.full((1, 2, 5), -1)]), is_train=False)
    expected = module.get_outputs()[3].asnumpy()[0]
    expected = expected[expected[:, 0] >= 0]
    assert len(rows) > 0
    np.testing.assert_allclose(rows, expected, rtol=1e-4, atol=1e-5)


def test_a_training_graph_without_detections_is_refused(tmp_path):
    model_dir, _ = builtin_detector(tmp_path, detection=False)
    with pytest.raises(ClientError, match="0 MultiBoxDetection layers; expected one"):
        predictor_of(model_dir)


# ---- semantic segmentation -------------------------------------------------------------------------------


def test_the_builtin_segmenter_params_alone_predict_as_the_exported_graph(trained, tmp_path):
    reference = trained("semantic-segmentation").model_dir
    model_dir = shutil.copytree(reference, tmp_path / "model")
    for name in ("model_algo-1-symbol.json", "model_algo-1-0000.params"):
        (model_dir / name).unlink()  # what the built-in writes: model_algo-1 and hyperparams.json
    builtin, ours = predictor_of(model_dir), predictor_of(reference)
    assert "GluonCV parameters" in builtin.description and "this image's graph" in ours.description
    body = encoded(picture(45, 61, seed=8))
    assert builtin(body, "image/png") == ours(body, "image/png")
    x = ours.prepare(body).x
    np.testing.assert_allclose(builtin.forward(x), ours.forward(x), rtol=1e-4, atol=1e-6)


def test_segmenter_params_that_do_not_fit_the_hyperparameters_are_refused(trained, tmp_path):
    model_dir = shutil.copytree(trained("semantic-segmentation").model_dir, tmp_path / "model")
    for name in ("model_algo-1-symbol.json", "model_algo-1-0000.params"):
        (model_dir / name).unlink()
    hp = json.loads((model_dir / "hyperparams.json").read_text())
    (model_dir / "hyperparams.json").write_text(json.dumps({**hp, "num_classes": "5"}))
    with pytest.raises(ClientError, match="model_algo-1: does not fit fcn resnet-50 with num_classes=5"):
        predictor_of(model_dir)


# ---- a model that cannot load stops the server ----------------------------------------------------------------


def test_a_model_that_cannot_load_stops_the_server_with_the_reason(trained, tmp_path):
    root = tmp_path / "ml"
    shutil.copytree(trained("image-classification").model_dir, root / "model")
    params = next((root / "model").glob("*.params"))
    params.write_bytes(params.read_bytes()[:100])
    server = start(root, tmp_path / "serve.log", wait=False)
    assert server.proc.wait(120) == 3
    assert "Customer Error: model image-classification-0001.params: does not fit its graph" in server.output()
