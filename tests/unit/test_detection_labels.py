"""Detection labels from RecordIO vectors and JSON annotations: every defect is named, slight
overhangs are clipped, padding is dropped. Plain data, no framework."""

from __future__ import annotations

import numpy as np
import pytest

from sagemaker_cv.algorithms.detection.labels import (
    Objects,
    ground_truth,
    iterator_objects,
    parse_annotation,
    parse_record_label,
)


def record(*values):
    return parse_record_label(np.array(values, dtype=np.float32), num_classes=3)


def test_a_pack_label_vector_becomes_objects():
    objects, layout = record(2, 5, 0, 0.1, 0.2, 0.5, 0.6, 2, 0.5, 0.5, 0.9, 0.8)
    assert objects.problems == [] and objects.clipped == 0
    assert objects.classes.tolist() == [0, 2]
    assert np.allclose(objects.boxes, [[0.1, 0.2, 0.5, 0.6], [0.5, 0.5, 0.9, 0.8]])
    assert (layout.header_width, layout.object_width, layout.length) == (2, 5, 12)
    assert layout.needed(2) == 12


def test_extra_header_values_and_wider_objects_are_honoured():
    objects, layout = record(4, 6, 7, 8, 1, 0.1, 0.1, 0.5, 0.5, 9, 0, 0.2, 0.2, 0.9, 0.9, 9)
    assert objects.problems == []
    assert objects.classes.tolist() == [1, 0]
    assert np.allclose(objects.boxes[1], [0.2, 0.2, 0.9, 0.9])
    assert layout.needed(2) == 16


def test_padding_objects_are_dropped_and_an_image_may_have_no_objects():
    objects, layout = record(2, 5, 1, 0.1, 0.1, 0.5, 0.5, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1)
    assert objects.count == 1 and objects.padding == 2 and layout.needed(objects.count) == 7
    empty, _ = record(2, 5)
    assert empty.count == 0 and empty.problems == []
    # MXNet's iterator needs one object: an empty image is packed with one it drops (no area).
    assert empty.label().tolist() == [2, 5, -1, 0, 0, 0, 0]


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        ((3.0,), "label has 1 value(s), expected [header_width, object_width, objects...]"),
        ((1, 5, 0, 0.1, 0.1, 0.2, 0.2), "header_width 1 (first label value) must be an integer in [2, 7]"),
        ((2, 4, 0, 0.1, 0.1, 0.2), "object_width 4 (second label value) must be an integer >= 5"),
        (
            (2, 5, 0, 0.1, 0.1, 0.2),
            "4 value(s) after the 2-value header do not make whole objects of 5 values",
        ),
        (
            (2, 5, 3, 0.1, 0.1, 0.2, 0.2),
            "object 0: class_id 3 is not a class index in [0, 2] (num_classes=3)",
        ),
        ((2, 5, -2, 0.1, 0.1, 0.2, 0.2), "object 0: class_id -2 is not a class index"),
        ((2, 5, 0.5, 0.1, 0.1, 0.2, 0.2), "object 0: class_id 0.5 is not a class index"),
        ((2, 5, 0, 12, 30, 140, 200), "these look like absolute pixel coordinates"),
        (
            (2, 5, 0, 0.1, 0.1, 1.3, 0.5),
            "box (0.1, 0.1, 1.3, 0.5) lies outside [0, 1] by more than 5% of the image",
        ),
        ((2, 5, 0, 0.5, 0.1, 0.5, 0.4), "box (0.5, 0.1, 0.5, 0.4) has zero area"),
        ((2, 5, 0, 0.6, 0.1, 0.5, 0.4), "has zero area (xmax must exceed xmin and ymax exceed ymin)"),
    ],
)
def test_record_defects_are_named(values, fragment):
    objects, _ = record(*values)
    assert any(fragment in p for p in objects.problems), objects.problems


def test_the_second_object_is_named_by_its_index():
    objects, _ = record(2, 5, 0, 0.1, 0.1, 0.2, 0.2, 5, 0.1, 0.1, 0.2, 0.2)
    assert objects.problems == ["object 1: class_id 5 is not a class index in [0, 2] (num_classes=3)"]


def test_slight_overhang_is_clipped_and_counted():
    objects, _ = record(2, 5, 1, -0.02, 0.1, 1.03, 0.5)
    assert objects.problems == [] and objects.clipped == 1
    assert np.allclose(objects.boxes, [[0.0, 0.1, 1.0, 0.5]])
    assert objects.label().tolist() == pytest.approx([2, 5, 1, 0.0, 0.1, 1.0, 0.5])


def annotation(*boxes, size=(200, 100), **extra):
    doc = {
        "file": "a.jpg",
        "image_size": [{"width": size[0], "height": size[1], "depth": 3}],
        "annotations": [dict(zip(("class_id", "left", "top", "width", "height"), b)) for b in boxes],
    }
    doc.update(extra)
    return doc


def test_a_json_annotation_becomes_normalised_objects():
    objects, file = parse_annotation(annotation((1, 20, 10, 100, 50)), 3, (200, 100))
    assert file == "a.jpg" and objects.problems == []
    assert objects.classes.tolist() == [1]
    assert np.allclose(objects.boxes, [[0.1, 0.1, 0.6, 0.6]])
    no_size = annotation((0, 0, 0, 10, 10))
    del no_size["image_size"]
    assert parse_annotation(no_size, 3, (200, 100))[0].count == 1  # image_size is optional
    empty, _ = parse_annotation(annotation(), 3, (200, 100))
    assert empty.count == 0 and empty.problems == []


@pytest.mark.parametrize(
    ("doc", "fragment"),
    [
        (annotation((3, 0, 0, 10, 10)), "object 0: class_id 3 is not a class index in [0, 2]"),
        (annotation((-1, 0, 0, 10, 10)), "object 0: class_id -1 is not a class index"),
        (annotation((0, 10, 10, 0, 20)), "object 0: box (left 10, top 10, width 0, height 20) has zero area"),
        (
            annotation((0, 150, 10, 120, 20)),
            "object 0: box (left 150, top 10, width 120, height 20) lies outside the image by more than 5%",
        ),
        (annotation((0, 1, 2, "3", 4)), "object 0: width='3' is not a number"),
        (annotation((0, 1, 2, 3)), "object 0: missing height"),
        (annotation(size=(640, 480)), "image_size says 640x480 (width x height) but the image is 200x100"),
        ([1, 2], "expected a JSON object with 'annotations', got list"),
        ({"annotations": {}}, "'annotations' must be a list of boxes, got dict"),
    ],
)
def test_annotation_defects_are_named(doc, fragment):
    objects, _ = parse_annotation(doc, 3, (200, 100))
    assert any(fragment in p for p in objects.problems), objects.problems


def test_annotation_overhang_is_clipped_in_pixels():
    objects, _ = parse_annotation(annotation((2, -4, 0, 50, 104)), 3, (200, 100))
    assert objects.problems == [] and objects.clipped == 1
    assert np.allclose(objects.boxes, [[0.0, 0.0, 0.23, 1.0]])


def test_iterator_rows_become_padded_ground_truth():
    # MXNet's detection iterator: 4 values of its own (the last: the label's length), then the
    # record's label, then -1 up to label_width.
    rows = np.array(
        [
            [3, 300, 300, 12, 2, 5, 0, 0.1, 0.2, 0.5, 0.6, 1, 0.5, 0.5, 0.9, 0.8, -1, -1],
            [3, 300, 300, 2, 2, 5, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1],
            [3, 300, 300, 11, 4, 7, 9, 9, 2, 0.1, 0.1, 0.2, 0.3, 5, 5, -1, -1, -1],
        ],
        dtype=np.float32,
    )
    assert iterator_objects(rows[2])[0].tolist() == [2]
    boxes, ids = ground_truth(rows, 300.0)
    assert boxes.shape == (3, 2, 4) and ids.shape == (3, 2, 1)
    assert np.allclose(boxes[0], [[30, 60, 150, 180], [150, 150, 270, 240]])
    assert ids[0, :, 0].tolist() == [0, 1] and ids[1, :, 0].tolist() == [-1, -1]
    assert np.allclose(boxes[2, 0], [30, 30, 60, 90]) and ids[2, :, 0].tolist() == [2, -1]
    assert np.all(boxes[1] == -1)


def test_objects_pack_into_the_im2rec_layout():
    objects = Objects(np.array([1, 0]), np.array([[0.1, 0.2, 0.3, 0.4], [0.5, 0.5, 1, 1]], np.float32))
    assert objects.label().tolist() == pytest.approx([2, 5, 1, 0.1, 0.2, 0.3, 0.4, 0, 0.5, 0.5, 1, 1])
