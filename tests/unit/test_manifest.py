"""Augmented-manifest attributes as SageMaker streams them: layouts and every label format, with
errors that name the sample, the attribute and the value."""

from __future__ import annotations

import json

import pytest

from sagemaker_cv.contract.config import Channel
from sagemaker_cv.contract.errors import ClientError
from sagemaker_cv.inputs import manifest as m

LAYOUT = m.ManifestLayout(("source-ref", "class"))
AT = m.where("train_0", 4, LAYOUT, 1)


def channel(**kw):
    extra = kw.pop("extra", {})
    return Channel("train", input_mode="Pipe", record_wrapper="RecordIO", extra=extra, **kw)


def test_layouts():
    assert m.layout_for(Channel("train", record_wrapper="None"), ("a", "b")) is None
    assert m.layout_for(Channel("train"), ("a", "b")) is None
    assumed = m.layout_for(channel(), ("source-ref", "class"))
    assert assumed == m.ManifestLayout(("source-ref", "class"), assumed=True)
    assert (
        m.where("train_0", 3, assumed, 1) == "train_0 sample 3 attribute 'class' (attribute 2 of 2, assumed)"
    )
    given = m.layout_for(channel(extra={"AttributeNames": ["image-ref", "labels"]}), ("source-ref", "class"))
    assert given.attributes == ("image-ref", "labels") and not given.assumed
    with pytest.raises(
        ClientError, match=r"AttributeNames=\['source-ref'\]: expected 2 attributes, the image first"
    ):
        m.layout_for(channel(extra={"AttributeNames": ["source-ref"]}), ("source-ref", "class"))
    with pytest.raises(ClientError, match="expected a list of attribute names"):
        m.layout_for(channel(extra={"AttributeNames": "source-ref,class"}), ("source-ref", "class"))


def test_label_format_comes_from_the_content_type():
    assert m.label_format(channel(content_type="application/x-recordio")) == "multi-hot"
    assert m.label_format(channel(content_type="application/x-recordio; label-format=class-id")) == "class-id"
    with pytest.raises(ClientError, match="label-format='ids', expected one of multi-hot, class-id"):
        m.label_format(channel(content_type="application/x-recordio; label-format=ids"))


@pytest.mark.parametrize("raw", [b"2", b'"2"', b"2.0", b"[2]", b'"[2]"', b"[0, 0, 1, 0]"])
def test_single_label_spellings(raw):
    assert m.classification_label(raw, AT, num_classes=4, multi_label=False) == (2.0,)


@pytest.mark.parametrize(
    "raw, fmt, expected",
    [
        (b"[1, 0, 1, 0]", "multi-hot", (1.0, 0.0, 1.0, 0.0)),
        (b'"[1, 0, 1, 0]"', "multi-hot", (1.0, 0.0, 1.0, 0.0)),
        (b"[0, 2]", "class-id", (1.0, 0.0, 1.0, 0.0)),
        (b'"[3]"', "class-id", (0.0, 0.0, 0.0, 1.0)),
        (b"1", "class-id", (0.0, 1.0, 0.0, 0.0)),
        (b"[]", "class-id", (0.0, 0.0, 0.0, 0.0)),
    ],
)
def test_multi_label_formats(raw, fmt, expected):
    assert m.classification_label(raw, AT, num_classes=4, multi_label=True, fmt=fmt) == expected


@pytest.mark.parametrize(
    "raw, multi, fmt, message",
    [
        (
            b"4",
            False,
            "multi-hot",
            "label '4': expected one class index, an integer in [0, 3] (num_classes=4)",
        ),
        (b"cat", False, "multi-hot", "label 'cat': expected one class index"),
        (b"[0, 1]", False, "multi-hot", "label '[0, 1]': expected one class index"),
        (b"[1, 0, 1]", True, "multi-hot", "expected a multi-hot list of num_classes=4 0/1 values"),
        (b"[0, 2]", True, "multi-hot", "use 'application/x-recordio; label-format=class-id'"),
        (b"[0, 0]", True, "class-id", "expected a list of distinct class indices"),
        (b"[5]", True, "class-id", "each an integer in [0, 3]"),
        (b"\xff\xfe", True, "class-id", "not UTF-8 text"),
    ],
)
def test_bad_labels_name_sample_attribute_and_value(raw, multi, fmt, message):
    with pytest.raises(ClientError) as err:
        m.classification_label(raw, AT, num_classes=4, multi_label=multi, fmt=fmt)
    assert err.value.problems[0].startswith("train_0 sample 4 attribute 'class' (attribute 2 of 2): ")
    assert message in err.value.problems[0]


def test_image_attribute_must_hold_image_bytes():
    m.check_image(b"\xff\xd8\xff\xe0 jpeg", "x")
    m.check_image(b"\x89PNG\r\n\x1a\n...", "x")
    for text in (b"[1, 0]", b"3", b"s3://bucket/a.jpg", b'{"a": 1}'):
        with pytest.raises(ClientError, match="AttributeNames must list the image"):
            m.check_image(text, "train_0 sample 0 attribute 'source-ref'")
    with pytest.raises(ClientError, match="not a PNG image"):
        m.check_png(b"\xff\xd8\xff jpeg", "mask")


BOX = {
    "image_size": [{"width": 500, "height": 400, "depth": 3}],
    "annotations": [
        {"class_id": 0, "left": 111, "top": 134, "width": 61, "height": 128},
        {"class_id": 2, "left": 0, "top": 0, "width": 500, "height": 400},
    ],
}


def test_detection_boxes_are_normalised_corners():
    boxes = m.detection_boxes(json.dumps(BOX).encode(), AT, num_classes=3)
    assert boxes[0] == pytest.approx((0.0, 111 / 500, 134 / 400, 172 / 500, 262 / 400))
    assert boxes[1] == (2.0, 0.0, 0.0, 1.0, 1.0)
    # As Ground Truth writes it, and as a JSON string holding it.
    assert m.detection_boxes(json.dumps(json.dumps(BOX)).encode(), AT, num_classes=3) == boxes
    assert m.detection_label_vector(boxes[:1]) == [2.0, 5.0, *boxes[0]]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"image_size": []}, "image_size=[]: expected"),
        ({"annotations": "none"}, "annotations='none': expected a list"),
        (
            {"annotations": [{"class_id": 3, "left": 1, "top": 1, "width": 1, "height": 1}]},
            "annotations[0] class_id=3",
        ),
        (
            {"annotations": [{"class_id": 0, "left": 1, "top": 1, "width": 0, "height": 1}]},
            "annotations[0] width=0",
        ),
        (
            {"annotations": [{"class_id": 0, "left": 450, "top": 1, "width": 100, "height": 1}]},
            "lies outside the image",
        ),
    ],
)
def test_bad_boxes_name_the_annotation(change, message):
    with pytest.raises(
        ClientError,
        match=r"train_0 sample 4 attribute 'class'.*" + message.replace("[", r"\[").replace("]", r"\]"),
    ):
        m.detection_boxes(json.dumps({**BOX, **change}).encode(), AT, num_classes=3)
