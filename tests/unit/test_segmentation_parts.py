"""Semantic segmentation's pure parts on plain data: label maps, metrics, schedules, transforms,
log lines and the hidden hyperparameters of the built-in's default-input."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from sagemaker_cv import algorithms
from sagemaker_cv.algorithms.segmentation import loglines as ss
from sagemaker_cv.algorithms.segmentation.labels import (
    DEFAULT,
    IGNORE,
    LabelMapError,
    parse_label_map,
    single_channel,
)
from sagemaker_cv.algorithms.segmentation.metrics import Confusion
from sagemaker_cv.algorithms.segmentation.schedule import IterationSchedule, learning_rate
from sagemaker_cv.algorithms.segmentation.transforms import (
    center_crop,
    round_up8,
    scaled_size,
    train_sample,
)
from sagemaker_cv.contract.errors import ClientError
from sagemaker_cv.tools.spec import metric_definitions

# ---- label maps -------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", [{"scale": "3"}, {"scale": 3}, {"scale": 3.0}, {"scale": " 3 "}])
def test_scale_as_string_or_number_divides_and_floors(spec):
    label_map = parse_label_map(spec, num_classes=3)
    # The documentation's example: 0, 3, 6 -> 0, 1, 2; values in between floor; 255 is ignore.
    mask = np.array([[0, 3, 6], [1, 5, 8], [255, 2, 7]], dtype=np.uint8)
    classes, bad = label_map.encode(mask, 3)
    assert bad is None
    assert classes.tolist() == [[0, 1, 2], [0, 1, 2], [IGNORE, 0, 2]]
    assert label_map.spec == spec  # logged as the user wrote it


def test_map_keys_are_classes_and_values_are_pixels():
    # The documentation's example: {"0": 5, "1": 0, "2": 2}, encoded [0, 5, 2] -> [1, 0, 2].
    label_map = parse_label_map({"map": {"0": 5, "1": 0, "2": "2"}}, num_classes=3)
    classes, bad = label_map.encode(np.array([[0, 5, 2, 255]], dtype=np.uint8), 3)
    assert bad is None and classes.tolist() == [[1, 0, 2, IGNORE]]


def test_default_is_pixel_equals_class():
    classes, bad = DEFAULT.encode(np.array([[0, 1, 2, 255]], dtype=np.uint8), 3)
    assert bad is None and classes.tolist() == [[0, 1, 2, 255]] and DEFAULT.spec == {"scale": 1}


def test_unmapped_value_is_named_with_where_it_is():
    mask = np.zeros((4, 5), dtype=np.uint8)
    mask[2, 3] = mask[3, 4] = 7
    _, bad = DEFAULT.encode(mask, 3)
    assert (bad.value, bad.row, bad.col, bad.count) == (7, 2, 3, 2)
    text = bad.describe(DEFAULT, 3)
    assert "pixel value 7 at row 2, column 3 maps to no class (2 such pixels)" in text
    assert "num_classes=3" in text
    # Through a map, a pixel value the map does not list.
    remap = parse_label_map({"map": {"0": 10, "1": 20}}, 2)
    _, bad = remap.encode(np.array([[10, 20], [30, 255]], dtype=np.uint8), 2)
    assert (bad.value, bad.row, bad.col) == (30, 1, 0)
    # With a scale: 9 // 3 = 3 is no class of three.
    _, bad = parse_label_map({"scale": 3}, 3).encode(np.array([[9]], dtype=np.uint8), 3)
    assert bad.value == 9


def test_sixteen_bit_values_beyond_255_are_unmapped_not_wrapped():
    _, bad = DEFAULT.encode(np.array([[0, 257]], dtype=np.uint16), 3)
    assert bad.value == 257


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ([1], "expected a JSON object"),
        ({}, "exactly one key"),
        ({"scale": 1, "map": {}}, "exactly one key"),
        ({"scale": "abc"}, "scale='abc': expected an integer"),
        ({"scale": 2.5}, "expected an integer"),
        ({"scale": 0}, "positive integer"),
        ({"scale": True}, "expected an integer"),
        ({"map": {}}, "non-empty object"),
        ({"map": {"3": 1}}, "class index outside [0, 2]"),
        ({"map": {"x": 1}}, "expected an integer"),
        ({"map": {"0": 255}}, "255 is reserved"),
        ({"map": {"0": 300}}, "outside [0, 254]"),
        ({"map": {"0": 4, "1": 4}}, "given to classes 0 and 1"),
    ],
)
def test_invalid_label_maps_say_why(spec, message):
    with pytest.raises(LabelMapError) as info:
        parse_label_map(spec, num_classes=3)
    assert message in str(info.value)


def test_channels_must_be_equal_to_read_as_one():
    grey = np.stack([np.eye(3, dtype=np.uint8)] * 3, axis=-1)
    values, problem = single_channel(grey)
    assert problem is None and values.tolist() == np.eye(3).tolist()
    colour = grey.copy()
    colour[1, 2] = (1, 2, 3)
    _, problem = single_channel(colour)
    assert "3 channels that are not equal (values 1, 2, 3 at row 1, column 2)" in problem


# ---- metrics ----------------------------------------------------------------------------------


def test_confusion_metrics_by_hand():
    labels = np.array([[0, 0, 1, 1], [2, 2, 255, 255]])
    predictions = np.array([[0, 1, 1, 1], [2, 0, 2, 0]])
    c = Confusion(3)
    c.update(labels, predictions)
    # 6 labelled pixels, 4 right; the two ignored pixels count nowhere.
    assert c.pixel_accuracy() == pytest.approx(4 / 6)
    # IoU: class 0: 1 / (2 + 2 - 1) = 1/3; class 1: 2 / (2 + 3 - 2) = 2/3; class 2: 1 / (2 + 1 - 1) = 1/2
    assert c.iou() == pytest.approx([1 / 3, 2 / 3, 1 / 2])
    assert c.mean_iou() == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)


def test_classes_absent_everywhere_do_not_count():
    c = Confusion(4)
    c.update(np.array([0, 0, 1]), np.array([0, 0, 1]))
    assert c.mean_iou() == 1.0 and math.isnan(c.iou()[3])
    c.update(np.array([255]), np.array([3]))  # a prediction on an ignored pixel counts nowhere
    assert math.isnan(c.iou()[3])


def test_batches_accumulate_like_one_update():
    rng = np.random.default_rng(0)
    labels, predictions = rng.integers(0, 3, (2, 5, 6)), rng.integers(0, 3, (2, 5, 6))
    whole, parts = Confusion(3), Confusion(3)
    whole.update(labels, predictions)
    for a, b in zip(labels, predictions):
        parts.update(a, b)
    assert np.array_equal(whole.matrix, parts.matrix)


# ---- schedules --------------------------------------------------------------------------------


def test_poly_cosine_step_by_formula():
    assert learning_rate("poly", 0.01, 0, 100) == 0.01
    assert learning_rate("poly", 0.01, 50, 100) == pytest.approx(0.01 * 0.5**0.9)
    assert learning_rate("poly", 0.01, 100, 100) == 0.0
    assert learning_rate("cosine", 0.01, 50, 100) == pytest.approx(0.005)
    assert learning_rate("cosine", 0.01, 100, 100) == pytest.approx(0.0)
    steps = (20, 40)
    assert [learning_rate("step", 1.0, t, 100, steps, 0.1) for t in (0, 19, 20, 39, 40, 99)] == pytest.approx(
        [1, 1, 0.1, 0.1, 0.01, 0.01]
    )


def test_the_optimizer_gets_iteration_n_minus_1_at_update_n():
    schedule = IterationSchedule("poly", 0.1, 10)
    assert schedule(1) == 0.1  # the first update uses the base rate
    assert schedule(6) == pytest.approx(learning_rate("poly", 0.1, 5, 10))
    import pickle

    # dist kvstores send the optimizer, with its schedule, to the servers pickled.
    assert pickle.loads(pickle.dumps(schedule))(6) == schedule(6)


# ---- transforms -------------------------------------------------------------------------------


def test_crop_size_rounds_up_to_a_multiple_of_8():
    assert [round_up8(c) for c in (17, 24, 25, 480, 481)] == [24, 24, 32, 480, 488]


def test_scaled_size_keeps_the_aspect_ratio():
    assert scaled_size(100, 50, 200) == (200, 100)
    assert scaled_size(30, 60, 41) == (21, 41)


def test_train_sample_shapes_pads_with_ignore_and_keeps_masks_exact():
    image = np.full((10, 14, 3), 200, np.uint8)
    mask = np.zeros((10, 14), np.uint8)
    mask[:, 7:] = 2
    seen_padding = False
    for seed in range(20):
        img, m = train_sample(image, mask, base_size=12, crop_size=16, rng=np.random.default_rng(seed))
        assert img.shape == (16, 16, 3) and m.shape == (16, 16)
        assert set(np.unique(m)) <= {0, 2, IGNORE}  # nearest neighbour: no blended classes
        padded = m == IGNORE
        seen_padding |= bool(padded.any())
        if padded.any():  # image padding is black where the mask says ignore (blur bleeds into its edge)
            assert (img[padded] < 200).all()
    assert seen_padding
    a = train_sample(image, mask, 12, 16, np.random.default_rng(3))
    b = train_sample(image, mask, 12, 16, np.random.default_rng(3))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_center_crop_resizes_the_short_side():
    image = np.arange(20 * 40 * 3, dtype=np.uint8).reshape(20, 40, 3)
    mask = np.zeros((20, 40), np.uint8)
    mask[:, 20:] = 1
    img, m = center_crop(image, mask, 10)
    assert img.shape == (10, 10, 3) and m.tolist() == [[0] * 5 + [1] * 5] * 10


# ---- log lines and hyperparameters ------------------------------------------------------------


def test_log_lines_are_the_builtins():
    assert (
        ss.progress_line(0, 20, 55.5700259596, 0.000098)
        == "#progress_notice. epoch: 0, iterations: 20 speed: 55.5700259596 samples/sec learning_rate: 0.000098"
    )
    assert (
        ss.progress_line(0, 20, 38.0787382452)
        == "#progress_notice. epoch: 0, iterations: 20 speed: 38.0787382452 samples/sec"
    )
    assert (
        ss.progress_metric_line("algo-1", 0, 10) == "#progress_metric: host=algo-1, completed 10 % of epochs"
    )
    assert ss.lr_setup_line(91, 10) == "LRScheduler setup: iters per epoch: 91, num_epochs 10"
    assert ss.label_map_line("train", {"scale": 1}) == "#label_map train :{'scale': 1}"
    assert (
        ss.serializing_line("/opt/ml/model/model_algo-1") == "Serializing model to /opt/ml/model/model_algo-1"
    )
    assert (
        ss.throughput_line("algo-1", 0, "train", 55.0439202038)
        == "#throughput_metric. host: algo-1, epoch: 0, train throughput: 55.0439202038 samples/sec."
    )


def test_metric_definitions_parse_the_builtins_sample_log():
    sample = """[04/14/2020 00:35:37 INFO 140] #quality_metric. host: algo-1, epoch: 0, train loss: 1.475714725452465 .
[04/14/2020 00:35:37 INFO 140] #throughput_metric. host: algo-1, epoch: 0, train throughput: 55.0439202038 samples/sec.
[04/14/2020 00:35:45 INFO 140] #quality_metric. host: algo-1, epoch: 0, validation pixel_accuracy: 0.8472626958559429 .
[04/14/2020 00:35:45 INFO 140] #quality_metric. host: algo-1, epoch: 0, validation mIOU: 0.5063982026717044 ."""
    found = {
        d["Name"]: re.search(d["Regex"], sample)
        for d in metric_definitions(algorithms.get("semantic-segmentation"))
    }
    assert float(found["validation:mIOU"].group(1)) == 0.5063982026717044
    assert float(found["validation:pixel_accuracy"].group(1)) == 0.8472626958559429
    assert float(found["train:loss"].group(1)) == 1.475714725452465
    assert float(found["train:throughput"].group(1)) == 55.0439202038


REQUIRED = {"num_classes": "3", "num_training_samples": "10"}
DEFAULT_INPUT_2020 = {
    "precision_dtype": "float32",
    "_workers": "16",
    "_aux_loss": "True",
    "_aux_weight": "0.5",
    "_hybrid": "False",
    "_augmentation_type": "default",
    "_logging_frequency": "20",
    "_kvstore": "device",
    "_num_kv_servers": "auto",
}


def test_the_builtins_default_input_is_accepted_and_meaningless_keys_are_named():
    schema = algorithms.get("semantic-segmentation").schema
    hp, warnings = schema.parse({**REQUIRED, **DEFAULT_INPUT_2020})
    assert (hp._workers, hp._aux_loss, hp._aux_weight, hp._logging_frequency) == (16, True, 0.5, 20)
    ignored = sorted(w.split("=")[0].split()[-1] for w in warnings if "ignored" in w)
    assert ignored == ["_hybrid", "_kvstore", "_num_kv_servers"]
    with pytest.raises(ClientError, match="precision_dtype=float16: needs a GPU"):
        schema.parse({**REQUIRED, "precision_dtype": "float16"})
    with pytest.raises(ClientError, match="_augmentation_type='fancy': expected one of default"):
        schema.parse({**REQUIRED, "_augmentation_type": "fancy"})


def test_loss_averages_each_samples_labelled_pixels_and_weights_the_aux_head():
    import mxnet as mx

    from sagemaker_cv.algorithms.segmentation.loss import MixedLoss

    rng = np.random.default_rng(0)
    main, aux = rng.normal(size=(2, 3, 4, 5)), rng.normal(size=(2, 3, 4, 5))
    labels = rng.integers(0, 3, (2, 4, 5)).astype(np.float32)
    labels[0, :2] = 255
    labels[1] = 255  # nothing labelled: no loss, not NaN

    def cross_entropy(scores, sample):
        log_p = scores[sample] - np.log(np.exp(scores[sample]).sum(axis=0))
        valid = labels[sample] != 255
        picked = np.take_along_axis(log_p, np.where(valid, labels[sample], 0).astype(int)[None], 0)[0]
        return -picked[valid].mean() if valid.any() else 0.0

    loss = MixedLoss(0.5)(mx.nd.array(labels), mx.nd.array(main), mx.nd.array(aux)).asnumpy()
    expected = [cross_entropy(main, i) + 0.5 * cross_entropy(aux, i) for i in range(2)]
    assert loss == pytest.approx(expected, rel=1e-5) and loss[1] == 0
    without_aux = MixedLoss(None)(mx.nd.array(labels), mx.nd.array(main)).asnumpy()
    assert without_aux[0] == pytest.approx(cross_entropy(main, 0), rel=1e-5)


def test_the_gradient_of_a_batch_is_the_recipes_at_the_same_learning_rate():
    """GluonCV's recipe: MixSoftmaxCrossEntropyLoss (SoftmaxOutput, averaged over the batch's
    labelled pixels) then trainer.step(batch); ours: per-sample means summed, then divided by
    recipe_denominator. The same gradient for the main output, so learning_rate means the same."""
    import mxnet as mx
    from gluoncv.loss import MixSoftmaxCrossEntropyLoss
    from mxnet import autograd

    from sagemaker_cv.algorithms.segmentation.loss import MixedLoss, recipe_denominator

    batch = 4
    rng = np.random.default_rng(1)
    labels = mx.nd.array(rng.integers(0, 3, (batch, 5, 6)))
    scores = rng.normal(size=(batch, 3, 5, 6))

    def gradient(loss_fn, denominator: float) -> np.ndarray:
        x = mx.nd.array(scores)
        x.attach_grad()
        with autograd.record():
            loss = loss_fn(x)
        loss.backward()
        return x.grad.asnumpy() / denominator  # what trainer.step(denominator) applies

    recipe = gradient(lambda x: MixSoftmaxCrossEntropyLoss(aux=False)(x, labels), batch)
    ours = gradient(lambda x: MixedLoss(None)(labels, x), recipe_denominator(batch, batch))
    assert ours == pytest.approx(recipe, rel=1e-4, abs=1e-9)
    # Averaged only once (the loss's per-sample mean, step(batch)), it would be `batch` times larger.
    assert np.abs(gradient(lambda x: MixedLoss(None)(labels, x), batch)).sum() == pytest.approx(
        batch * np.abs(recipe).sum(), rel=1e-4
    )
