"""The three predictors behind the serving handler, each on a tiny stand-in network whose output
depends on the pixels it is given (no trained model): what the request's Content-Type changes and
what it does not.

Tier: fast (no server, no model files).
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
