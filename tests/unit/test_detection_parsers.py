"""COCO instances files, Pascal VOC XML and the class map they give, parsed as plain data: every
defect named by file, image id or annotation id (or object), boxes converted to the pixel boxes the
per-image JSON gives. Tier: fast (no MXNet, no files)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sagemaker_cv.algorithms.detection.classes import (
    coco_classes,
    parse_classes_txt,
    read_class_map,
    voc_classes,
)
from sagemaker_cv.algorithms.detection.coco import drop_segmentation, is_coco, parse_coco
from sagemaker_cv.algorithms.detection.evaluation import VOC07MeanAP
from sagemaker_cv.algorithms.detection.labels import PixelBox, parse_annotation, pixel_objects
from sagemaker_cv.algorithms.detection.voc import parse_voc
from sagemaker_cv.contract.errors import ClientError

SOURCE = "train_annotation/instances.json"


def coco_doc(**changes) -> dict:
    doc = {
        "images": [
            {"id": 10, "file_name": "a.jpg", "width": 200, "height": 100},
            {"id": 11, "file_name": "b.jpg", "width": 50, "height": 50},
        ],
        "annotations": [
            {"id": 1, "image_id": 10, "category_id": 7, "bbox": [20, 10, 100, 50], "iscrowd": 0},
            {"id": 2, "image_id": 10, "category_id": 3, "bbox": [0, 0, 10, 10], "iscrowd": 1},
        ],
        "categories": [{"id": 7, "name": "dog"}, {"id": 3, "name": "cat"}],
    }
    doc.update(changes)
    return doc


def test_coco_boxes_become_the_per_image_jsons_pixel_boxes():
    parsed = parse_coco(coco_doc(), SOURCE)
    assert parsed.problems == []
    class_map, problems = coco_classes(parsed.categories, "the COCO categories")
    assert problems == [] and class_map.names == ("cat", "dog") and class_map.category_ids == (3, 7)
    first = parsed.images[0]
    assert (first.id, first.file_name, first.size) == (10, "a.jpg", (200, 100))
    train = parsed.pixel_boxes(first, class_map.class_of_category(), train=True)
    assert train == [PixelBox("annotation id 1", 1, 20, 10, 100, 50)]  # the crowd left out
    validation = parsed.pixel_boxes(first, class_map.class_of_category(), train=False)
    assert [b.difficult for b in validation] == [False, True]  # the crowd kept out of mAP
    same, _ = parse_annotation(
        {"annotations": [{"class_id": 1, "left": 20, "top": 10, "width": 100, "height": 50}]}, 2, (200, 100)
    )
    from_coco = pixel_objects(train, 2, (200, 100))
    assert np.array_equal(from_coco.boxes, same.boxes) and np.array_equal(from_coco.classes, same.classes)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"images": None}, "needs the lists images, annotations, categories; images missing or not a list"),
        ({"categories": []}, "'categories' is empty"),
        (
            {"categories": [{"id": 7, "name": "dog"}, {"id": 7, "name": "cat"}]},
            "category id 7 is listed twice",
        ),
        (
            {"images": [{"id": 10, "file_name": "a.jpg", "width": float("nan"), "height": 100}]},
            "image id 10: width=nan, height=100: expected the image's size in pixels",
        ),
        (
            {"images": [{"id": 10, "file_name": "a\x00b", "width": 1, "height": 1}]},
            "image id 10: file_name='a\\x00b': expected the image's path",
        ),
        (
            {"images": [{"id": 10, "file_name": "a.jpg", "width": 2, "height": 2}] * 2},
            "image id 10: listed twice ('a.jpg' and 'a.jpg')",
        ),
        (
            {"annotations": [{"id": 5, "image_id": 99, "category_id": 7, "bbox": [0, 0, 1, 1]}]},
            "annotation id 5: image_id=99 is not the id of an image in 'images'",
        ),
        (
            {"annotations": [{"id": 5, "image_id": 10, "category_id": 7, "bbox": [0, 0, 1e400, 1]}]},
            "annotation id 5 (image id 10): bbox=[0, 0, inf, 1]: expected [x, y, width, height]",
        ),
        (
            {
                "annotations": [
                    {"id": 5, "image_id": 10, "category_id": 7, "bbox": [0, 0, 1, 1], "iscrowd": 2}
                ]
            },
            "annotation id 5 (image id 10): iscrowd=2: expected 0 or 1",
        ),
        (
            {"annotations": [{"id": 5, "image_id": 10, "category_id": 10**400, "bbox": [0, 0, 1, 1]}]},
            "category_id=1000000000000000000000000000000000000000 is not an integer",
        ),
    ],
)
def test_coco_defects_name_the_file_and_the_id(change, fragment):
    problems = parse_coco(coco_doc(**change), SOURCE).problems
    assert any(p.startswith(SOURCE) and fragment in p for p in problems), problems


def test_coco_unknown_category_and_conflicting_names():
    parsed = parse_coco(
        coco_doc(annotations=[{"id": 9, "image_id": 11, "category_id": 4, "bbox": [1, 1, 5, 5]}]), SOURCE
    )
    class_map, _ = coco_classes(parsed.categories, "x")
    assert parsed.pixel_boxes(parsed.images[1], class_map.class_of_category(), train=True) == [
        "annotation id 9: category_id 4 is not in 'categories' (ids 3, 7)"
    ]
    _, problems = coco_classes([(3, "cat"), (3, "kitten")], "the COCO categories of a and b")
    assert problems == ["the COCO categories of a and b: category id 3 is named both 'cat' and 'kitten'"]


def test_coco_is_told_from_a_per_image_annotation_and_its_polygons_are_dropped():
    assert is_coco(coco_doc()) and not is_coco({"file": "a.jpg", "annotations": [], "categories": []})
    text = json.dumps(coco_doc(annotations=[{"id": 1, "segmentation": [[1, 2, 3]], "bbox": [0, 0, 1, 1]}]))
    assert "segmentation" not in json.loads(text, object_hook=drop_segmentation)["annotations"][0]


def voc_xml(objects: str = "", size: str = "<width>200</width><height>100</height>") -> bytes:
    return f"<annotation><filename>a.jpg</filename><size>{size}</size>{objects}</annotation>".encode()


DOG = "<object><name>dog</name><difficult>1</difficult><bndbox><xmin>21</xmin><ymin>11</ymin><xmax>120</xmax><ymax>60</ymax></bndbox></object>"


def test_voc_corners_are_one_based_and_inclusive():
    parsed = parse_voc(voc_xml(DOG), "train_annotation/a.xml")
    assert parsed.problems == [] and parsed.filename == "a.jpg" and parsed.size == (200, 100)
    boxes = parsed.pixel_boxes({"dog": 0}, "x")
    assert boxes == [PixelBox("object 0 ('dog')", 0, 20, 10, 100, 50, True)]
    objects = pixel_objects(boxes, 1, (200, 100))
    assert np.allclose(objects.boxes, [[0.1, 0.1, 0.6, 0.6]]) and objects.difficult.tolist() == [True]


@pytest.mark.parametrize(
    ("xml", "fragment"),
    [
        (b"<annotation><filename>a.jpg", "train_annotation/a.xml: not well-formed XML (no element found"),
        (b"<coco/>", "the root element is <coco>, expected <annotation>"),
        (voc_xml(size="<width>-3</width><height>x</height>"), "<size> width '-3', height 'x': expected"),
        (voc_xml("<object><bndbox/></object>"), "train_annotation/a.xml object 0: no <name>"),
        (
            voc_xml("<object><name>dog</name><bndbox><xmin>1</xmin></bndbox></object>"),
            "object 0 ('dog'): <bndbox> needs numbers xmin, ymin, xmax, ymax (got xmin='1', ymin=None",
        ),
        (voc_xml(DOG.replace("<difficult>1", "<difficult>yes")), "<difficult> 'yes': expected 0 or 1"),
        (b"<annotation>" + b"<a>" * 100000 + b"</a>" * 100000 + b"</annotation>", "no <filename>"),
        # Misspelt or differently cased elements would drop what they hold without a word.
        (
            voc_xml(DOG.replace("object>", "Object>")),
            "<Object> is not an element of Pascal VOC's <annotation>",
        ),
        (
            voc_xml(DOG.replace("object>", "objects>")),
            "<objects> is not an element of Pascal VOC's <annotation>",
        ),
        (
            voc_xml(DOG.replace("object>", "obj>")),
            "<obj> is not an element of Pascal VOC's <annotation>: expected <object>",
        ),
        (voc_xml(DOG.replace("difficult>", "Difficult>")), "object 0 ('dog'): <Difficult> is not an element"),
        (voc_xml(DOG.replace("<ymax>60</ymax>", "<ymax>60</ymax><YMax>6</YMax>")), "<bndbox>: <YMax> is not"),
        (voc_xml(size="<width>200</width><Height>100</Height>"), "a.xml <size>: <Height> is not an element"),
    ],
)
def test_voc_defects_name_the_file_and_the_object(xml, fragment):
    problems = parse_voc(xml, "train_annotation/a.xml").problems
    assert any(p.startswith("train_annotation/a.xml") and fragment in p for p in problems), problems


def test_voc_elements_beside_the_ones_read_are_no_defect():
    """VOC's other elements, comments, and a wrapper around <object>s (whose objects are read)."""
    xml = voc_xml(
        "<!-- from LabelImg --><folder>VOC2007</folder><source><database>VOC</database></source>"
        "<segmented>0</segmented><owner/><path>/tmp/a.jpg</path><objects>"
        + DOG.replace("<name>", "<pose>Left</pose><truncated>0</truncated><name>")
        + "</objects>",
        size="<width>200</width><height>100</height><depth>3</depth>",
    )
    parsed = parse_voc(xml, "train_annotation/a.xml")
    assert parsed.problems == [] and [o.label for o in parsed.objects] == ["dog"]


def test_voc_class_ids_from_sorted_names_or_classes_txt():
    assert voc_classes(["dog", "cat", "dog"], None, "names").names == ("cat", "dog")
    assert voc_classes(["dog", "cat"], ["dog", "cat", "bird"], "classes.txt").names == ("dog", "cat", "bird")
    parsed = parse_voc(voc_xml(DOG), "v/a.xml")
    assert parsed.pixel_boxes({"cat": 0}, "train_annotation/classes.txt") == [
        "object 0 ('dog'): name 'dog' is not a class of train_annotation/classes.txt"
    ]
    assert parse_classes_txt("cat\n\ndog \ncat\n", "c.txt") == (
        ["cat", "dog"],
        ["c.txt:4: class 'cat' is listed twice (also on line 1)"],
    )
    assert parse_classes_txt("\n \n", "c.txt") == ([], ["c.txt: lists no class names (one name a line)"])


def test_num_classes_must_match_the_class_map():
    class_map = voc_classes(["dog", "cat"], None, "the VOC object names of train_annotation")
    assert class_map.count_problem(2) is None
    assert class_map.count_problem(3) == (
        "num_classes=3, but the VOC object names of train_annotation define 2 class(es): 0=cat, 1=dog; "
        "set num_classes=2"
    )
    assert class_map.document() == {
        "format": "voc",
        "classes": [{"class_id": 0, "name": "cat"}, {"class_id": 1, "name": "dog"}],
    }


def test_a_models_class_map_reads_back_and_is_compared_by_class_id():
    model_map, _ = coco_classes([(7, "dog"), (1, "cat")], "categories")
    read = read_class_map(json.loads(model_map.text()), "the model's class_map.json")
    assert (read.format, read.names, read.category_ids) == ("coco", ("cat", "dog"), (1, 7))
    # Names decide, not where they came from or COCO's category ids.
    assert voc_classes(["dog", "cat"], None, "VOC names").disagreement(read, "channel 'model'") is None
    sorted_names = voc_classes(["dog", "bird", "cat"], None, "the VOC object names of validation_annotation")
    assert read_class_map({"format": "voc", "classes": [{"class_id": 0, "name": "dog"}]}, "m").names == (
        "dog",
    )
    assert voc_classes(["cat"], None, "n").disagreement(read, "m") == (
        "m: its class_map.json has 0=cat (category 1), 1=dog (category 7), but n define 0=cat; class 1 is "
        "'dog' in the model and no class in the data, so the model's class ids would be read as other "
        "classes; a classes.txt in the annotation channel fixes VOC's class ids: list the model's classes in "
        "its order (cat, dog)"
    )
    assert "the model knows no class 'bird'" in sorted_names.disagreement(read, "m")


@pytest.mark.parametrize(
    "doc",
    [
        [],
        {"format": "yolo", "classes": [{"class_id": 0, "name": "a"}]},
        {"format": "voc", "classes": []},
        {"format": "voc", "classes": [{"class_id": 1, "name": "a"}]},
        {"format": "voc", "classes": [{"class_id": True, "name": "a"}]},
        {"format": "voc", "classes": [{"class_id": 0, "name": 5}]},
    ],
)
def test_a_class_map_json_not_as_training_writes_it_is_named(doc):
    with pytest.raises(ClientError) as caught:
        read_class_map(doc, "the model's class_map.json")
    assert str(caught.value).startswith("the model's class_map.json: ")


def test_difficult_objects_count_neither_way_in_map():
    metric = VOC07MeanAP(0.5)
    truth = np.array([[[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0]]])
    ids = np.array([[0, 0]])
    found = np.array([[[0, 0.9, 0.5, 0.5, 1.0, 1.0], [0, 0.8, 0.0, 0.0, 0.5, 0.5]]])
    metric.update(found, truth, ids, np.array([[False, True]]))
    assert metric.value() == 1.0  # the detection of the difficult object is no false positive
    plain = VOC07MeanAP(0.5)
    plain.update(found[:, :1], truth, ids)
    assert plain.value() < 1.0  # one of two objects found


@pytest.mark.parametrize("name", ["docs/detection-inputs.md", "README.md"])
def test_the_pages_examples_parse_as_they_say(name):
    """The minimal COCO and VOC examples of docs/detection-inputs.md and the README, read by the parsers."""
    from pathlib import Path

    page = (Path(__file__).resolve().parents[2] / name).read_text()
    coco_text = next(b for b in page.split("```json")[1:] if '"images"' in b).split("```")[0]
    parsed = parse_coco(json.loads(coco_text), "instances.json")
    class_map, _ = coco_classes(parsed.categories, "x")
    assert parsed.problems == [] and class_map.names == ("person", "dog")
    assert parsed.pixel_boxes(parsed.images[0], class_map.class_of_category(), train=True)[0].cls == 1
    xml = page.split("```xml")[1].split("```")[0].encode()
    image = parse_voc(xml, "000005.xml")
    assert image.problems == [] and image.pixel_boxes({"chair": 0}, "x")[0] == PixelBox(
        "object 0 ('chair')", 0, 262, 210, 62, 129
    )


def test_evaluate_names_the_classes_of_coco_and_voc_data():
    from sagemaker_cv.algorithms.detection.evaluation import DetectionSet, report

    found = DetectionSet()
    found.update(
        np.array([[[0, 0.9, 0.1, 0.1, 0.5, 0.5]]]), np.array([[[0.1, 0.1, 0.5, 0.5]]]), np.array([[0]])
    )
    assert report(found, 0.5, ("cat", "dog"))["classes"][0]["name"] == "cat"
    assert "name" not in report(found, 0.5)["classes"][0]


def test_coco_style_ap_ignores_detections_on_crowds():
    from sagemaker_cv.algorithms.detection.evaluation import DetectionSet, coco_matches

    rows = np.array([[0, 0.9, 0.0, 0.0, 0.5, 0.5], [0, 0.8, 0.5, 0.5, 1.0, 1.0]])
    truth = np.array([[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0]])
    hits = coco_matches(rows, truth, 0.5, np.array([False, True]))
    assert hits[0] == 1 and np.isnan(hits[1])  # the crowd's detection counts neither way
    found = DetectionSet()
    found.update(rows[None], truth[None], np.array([[0, 0]]), np.array([[False, True]]))
    assert found.coco() == {0: 1.0}
