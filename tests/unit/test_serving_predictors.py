"""The three predictors behind the serving handler, each on a tiny stand-in network whose output
depends on the pixels it is given (no trained model): what the request's Content-Type changes and
what it does not; and image classification's transform, pixel for pixel validation's with the
resize a job records in model-shapes.json.

Tier: fast (no server, no trained model).
"""

from __future__ import annotations

import json

import cv2
import mxnet as mx
import numpy as np
import pytest

from sagemaker_cv.serving.handler import Handler

OCTET_STREAM = "application/octet-stream"


def picture(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth BGR picture, not square, so that resizes and crops change what the network sees."""
    noise = np.random.default_rng(seed).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    return cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)


def encoded(image: np.ndarray, ext: str = ".jpg") -> bytes:
    return cv2.imencode(ext, image)[1].tobytes()


def channel_means(x):
    """(1, 3): the mean of each input channel, 0-1: changes with every pixel of the input."""
    return x.mean(axis=(2, 3)) / 255


def classification():
    from sagemaker_cv.algorithms.classification.predict import ClassificationPredictor

    net = lambda x: mx.nd.softmax(channel_means(x) * 10)  # noqa: E731
    return ClassificationPredictor(net, mx.cpu(), (3, 24, 24), "softmax")


def detection():
    from sagemaker_cv.algorithms.detection.predict import DetectionPredictor

    def net(x):
        r, g, b = channel_means(x)[0].asnumpy().tolist()
        rows = [[0, r, 0.1 * g, 0.1 * b, 0.5 + 0.1 * g, 0.9], [-1] * 6]  # and one padding row
        return mx.nd.array([rows])

    return DetectionPredictor(net, mx.cpu(), 300, "stand-in")


def segmentation():
    from sagemaker_cv.algorithms.segmentation.predict import SegmentationPredictor

    net = lambda x: mx.nd.softmax(x[:, :2] / 32, axis=1)  # noqa: E731 - two classes, per pixel
    return SegmentationPredictor(net, mx.cpu(), 2, "stand-in")


PREDICTORS = {"classification": classification, "detection": detection, "segmentation": segmentation}


@pytest.mark.parametrize("make", PREDICTORS.values(), ids=PREDICTORS.keys())
def test_an_image_sent_as_octet_stream_gets_the_answer_of_its_own_type(make):
    """The SageMaker Python SDK v2's default Predictor sends raw bytes as application/octet-stream."""
    predictor = make()
    handler = Handler(predictor)
    assert OCTET_STREAM in predictor.content_types
    for body, own_type in (
        (encoded(picture(30, 41)), "image/jpeg"),
        (encoded(picture(33, 25), ".png"), "image/png"),
    ):
        for accept in predictor.accepts:
            named = handler(body, own_type, accept)
            unnamed = handler(body, OCTET_STREAM, accept)
            assert named.status == 200, named.body
            assert (unnamed.status, unnamed.content_type, unnamed.body) == (200, accept, named.body)
    # Not vacuous: another picture gets another answer.
    other = handler(encoded(picture(30, 41, seed=1)), OCTET_STREAM, None)
    assert other.body != handler(encoded(picture(30, 41)), OCTET_STREAM, None).body


@pytest.mark.parametrize("make", PREDICTORS.values(), ids=PREDICTORS.keys())
def test_bytes_that_are_no_image_sent_as_octet_stream_get_415_with_the_types_taken(make):
    handler = Handler(make())
    for content_type in (OCTET_STREAM, "application/octet-stream; charset=binary"):
        response = handler(b"not an image, just text", content_type, None)
        assert (response.status, response.content_type) == (415, "application/json")
        message = json.loads(response.body)["error"]
        assert message.startswith(f"Content-Type {content_type!r}: the request body (23 bytes"), message
        assert "is not an image in a format this server decodes (JPEG, PNG" in message
        assert message.endswith(
            "send the bytes of one image, as one of image/jpeg, image/png, application/x-image, "
            "application/octet-stream"
        ), message
    # Bytes said to be an image that are not one stay a bad request; so does a damaged image, or
    # none, whatever the type.
    assert handler(b"not an image, just text", "image/jpeg", None).status == 400
    truncated = handler(encoded(picture(30, 41))[:-200], OCTET_STREAM, None)
    assert truncated.status == 400 and "truncated" in json.loads(truncated.body)["error"]
    empty = handler(b"", OCTET_STREAM, None)
    assert empty.status == 400 and "empty" in json.loads(empty.body)["error"]
    # Other types are still refused before the body is looked at.
    refused = handler(encoded(picture(30, 41)), "text/plain", None)
    assert refused.status == 415 and "application/octet-stream" in json.loads(refused.body)["error"]


# ---- image classification: validation's transform, with the resize the model records -------------


def one_record(path, body: bytes) -> None:
    writer = mx.recordio.MXIndexedRecordIO(str(path.with_suffix(".idx")), str(path), "w")
    writer.write_idx(0, mx.recordio.pack(mx.recordio.IRHeader(0, 0.0, 0, 0), body))
    writer.close()


def validation_input(tmp_path, body: bytes, image_shape, resize) -> np.ndarray:
    """What the job's validation feeds the network for `body`: ImageRecordIter, as training reads."""
    from sagemaker_cv.algorithms.classification import data
    from sagemaker_cv.algorithms.classification.records import LabelRules, PreparedRecords

    rec = tmp_path / "one.rec"
    one_record(rec, body)
    rules = LabelRules(2, False, image_shape, resize=resize)
    prepared = PreparedRecords("validation", "one.rec", (rec,), str(rec), rec.with_suffix(".idx"), 1, [])
    return next(iter(data.record_iter(prepared, batch_size=1, rules=rules, train=False))).data[0].asnumpy()


@pytest.mark.parametrize("height,width", [(60, 45), (45, 83), (40, 40), (33, 52)])
def test_served_pixels_are_validations_for_a_resize_larger_than_the_crop(tmp_path, height, width):
    from sagemaker_cv.algorithms.classification.predict import ClassificationPredictor

    image_shape, resize = (3, 32, 32), 40
    body = encoded(picture(height, width, seed=height))
    served = ClassificationPredictor(None, mx.cpu(), image_shape, "softmax", resize).prepare(body)
    validated = validation_input(tmp_path, body, image_shape, resize)
    np.testing.assert_array_equal(served.x.asnumpy(), validated)
    assert (served.width, served.height) == (width, height)
    # Not vacuous: the crop's side (what a model that records no resize is served with) sees other pixels.
    unrecorded = ClassificationPredictor(None, mx.cpu(), image_shape, "softmax").prepare(body)
    assert unrecorded.x.shape == served.x.shape and not np.array_equal(unrecorded.x.asnumpy(), validated)


def test_the_resize_a_job_records_for_serving(tmp_path):
    from sagemaker_cv.algorithms.classification.archive import model_shapes, recorded_resize, validation_side
    from sagemaker_cv.contract.errors import ClientError

    shape = (3, 32, 32)
    assert validation_side(40, (50, 90), shape) == 40  # the job's resize, whatever the images
    assert validation_side(None, (40, 40), shape) == 40  # no resize: the side every image has
    assert validation_side(None, (40, 48), shape) is None  # sides differ: none to name
    assert validation_side(None, None, shape) is None  # Pipe mode: the images are not seen before
    assert validation_side(None, (24, 24), (3, 24, 32)) is None  # turned 90 degrees, it could not be cropped
    assert model_shapes(16, shape, None) == [{"shape": [16, 3, 32, 32], "name": "data"}]  # the built-in's

    (tmp_path / "image-classification-symbol.json").write_text("{}")
    (tmp_path / "image-classification-0001.params").write_bytes(b"")
    shapes = tmp_path / "model-shapes.json"
    shapes.write_text(json.dumps(model_shapes(16, shape, 40)))
    assert json.loads(shapes.read_text()) == [{"shape": [16, 3, 32, 32], "name": "data", "resize": 40}]
    assert recorded_resize(tmp_path, shape) == 40
    shapes.write_text(json.dumps(model_shapes(16, shape, None)))
    assert recorded_resize(tmp_path, shape) is None
    for bad in (20, "40", 40.5, True):
        shapes.write_text(json.dumps([{"shape": [16, 3, 32, 32], "name": "data", "resize": bad}]))
        with pytest.raises(ClientError, match=rf"model-shapes.json: resize={bad!r}; expected an integer"):
            recorded_resize(tmp_path, shape)
