"""Object detection: every broken input ends in `validate` as a ClientError that names the file (and
record, image id or object) and what would be valid; never a crash, a blow-up, silence, or the
internals of MXNet, OpenCV or Python. One table: the input, the exit code, the words.

Tier: fast (each case is `validate` in this process on a copy of a six-image tree; the trees are
written once per module).
"""

from __future__ import annotations

import json
import re

import mxnet as mx
import numpy as np
import pytest
from bad_inputs import (
    Case,
    both,
    check,
    deep,
    edit_json,
    fifo,
    link_loop,
    link_outside,
    png_header,
    set_hyperparameters,
    validate,
    write,
)

from sagemaker_cv.tools.detection_demo import write_detection_tree

pytestmark = pytest.mark.fast

HP = {
    "mini_batch_size": "2",
    "epochs": "1",
    "label_width": "12",
    "base_network": "resnet-50",
    "use_pretrained_model": "0",
}
FIRST = "train_annotation/image_0000.json"
COCO = "train_annotation/instances.json"
#: an annotation or image refused or unreadable is named once, never again as its partner's "missing" one
MISSING = ("image without annotation", "annotation without image", "annotated twice")


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    made = {}
    for content in ("images", "coco", "voc", "recordio"):
        made[content] = tmp_path_factory.mktemp("bases") / content
        write_detection_tree(made[content], content=content, train_images=4, val_images=2, hyperparameters=HP)
    return made


def first_box(**values):
    return lambda d: d["annotations"][0].update(values)


def coco_change(change):
    def edit(doc):
        change(doc)

    return edit_json(COCO, edit)


def channel_type(name: str, content_type: str):
    def edit(root):
        path = root / "input/config/inputdataconfig.json"
        channels = json.loads(path.read_text())
        channels[name]["ContentType"] = content_type
        path.write_text(json.dumps(channels))

    return edit


def rewrite_records(split: str, change):
    """Every record of the split's .rec file replaced by `change(index, header, image)`."""

    def edit(root):
        rec = next((root / "input/data" / split).glob("*.rec"))
        reader = mx.recordio.MXRecordIO(str(rec), "r")
        records = []
        while (item := reader.read()) is not None:
            records.append(item)
        reader.close()
        writer = mx.recordio.MXRecordIO(str(rec), "w")
        for index, item in enumerate(records):
            writer.write(change(index, *mx.recordio.unpack(item)))
        writer.close()

    return edit


def huge_first_image(index, header, image):
    """The first record carries a 20000x20000 PNG header."""
    return mx.recordio.pack(header, png_header(20000, 20000) if index == 0 else image)


def no_objects(index, header, image):
    """A label of the header alone ([2, 5]: header and object widths), no object."""
    return mx.recordio.pack(header._replace(flag=2, label=np.array([2.0, 5.0], np.float32)), image)


def bom(relative: str):
    def edit(root):
        path = root / "input/data" / relative
        path.write_bytes("\ufeff".encode() + path.read_bytes())

    return edit


VOC_BOX = "<bndbox><xmin>5</xmin><ymin>5</ymin><xmax>{}</xmax><ymax>20</ymax></bndbox>"


def voc_object(name: str, xmax: int = 20, difficult: str = "0") -> str:
    box = VOC_BOX.format(xmax)
    return f"<object><name>{name}</name><difficult>{difficult}</difficult>{box}</object>"


def voc_insert(relative: str, xml: str):
    def edit(root):
        path = root / "input/data" / relative
        path.write_text(path.read_text().replace("</annotation>", xml + "</annotation>"))

    return edit


def each(pattern: str, change):
    """`change(text)` applied to every file of input/data that `pattern` matches."""

    def edit(root):
        paths = sorted((root / "input/data").glob(pattern))
        assert paths, pattern
        for path in paths:
            path.write_text(change(path.read_text()))

    return edit


def json_text(change):
    def edit(text):
        doc = json.loads(text)
        change(doc)
        return json.dumps(doc)

    return edit


def without_voc_objects(text: str) -> str:
    return re.sub(r"<object>.*?</object>", "", text)


CASES = {
    "images": [
        # A typo in the key that lists the boxes trained every image as background.
        Case(
            "annotations-missing",
            edit_json(FIRST, lambda d: d.pop("annotations")),
            2,
            (f"{FIRST}: no 'annotations' list", '"annotations": []'),
        ),
        Case(
            "annotations-misspelled",
            edit_json(FIRST, lambda d: d.update(anotations=d.pop("annotations"))),
            2,
            (f"{FIRST}: no 'annotations' list (is 'anotations' a misspelling?)",),
        ),
        # Not one object to learn from, or to score validation mAP on.
        Case(
            "no-object-in-train",
            each("train_annotation/*.json", json_text(lambda d: d.update(annotations=[]))),
            2,
            (
                "train + train_annotation: found 4 image(s) and no object (every annotation's 'annotations' "
                "list is empty); training on it would teach the detector that nothing is ever there",
            ),
            ("validation",),
        ),
        Case(
            "no-object-in-validation",
            each("validation_annotation/*.json", json_text(lambda d: d.update(annotations=[]))),
            2,
            (
                "validation + validation_annotation: found 2 image(s) and no object",
                "validation mAP is undefined without objects",
            ),
            ("train +",),
        ),
        Case(
            "nested-200000-deep",
            write(FIRST, deep(200000)),
            2,
            (f"{FIRST}: not valid JSON (lists and objects nested too deeply)",),
            MISSING,
        ),
        Case(
            "integer-of-5000-digits",
            write(FIRST, '{"annotations": [{"class_id": ' + "7" * 5000 + "}]}"),
            2,
            (f"{FIRST}: not valid JSON (holds a number of more than 4300 digits)",),
        ),
        Case(
            "integer-of-400-digits",
            edit_json(FIRST, first_box(left=int("9" * 400))),
            2,
            (f"{FIRST} object 0: left=999", "is not a finite number"),
        ),
        Case(
            "image-size-nan",
            write(FIRST, '{"image_size": [{"width": NaN, "height": 3}], "annotations": []}'),
            2,
            (f"{FIRST}: not valid JSON (NaN is not a JSON number)",),
        ),
        Case(
            "image-size-infinity",
            write(FIRST, '{"image_size": [{"width": Infinity, "height": 3}], "annotations": []}'),
            2,
            (f"{FIRST}: not valid JSON (Infinity is not a JSON number)",),
        ),
        Case(
            "image-size-huge-float",
            write(FIRST, '{"image_size": [{"width": 1e400, "height": 3}], "annotations": []}'),
            2,
            (f"{FIRST}: image_size=", "with whole numbers of pixels"),
            MISSING,
        ),
        Case(
            "nul-byte-in-file",
            edit_json(FIRST, lambda d: d.update(file="image\x000000.jpg")),
            2,
            (f"{FIRST}: 'file' must be the image's path in its channel",),
            MISSING,
        ),
        Case(
            "bom-is-accepted",
            both(bom(FIRST), edit_json("train_annotation/image_0001.json", lambda d: d.pop("annotations"))),
            2,
            ("train_annotation/image_0001.json: no 'annotations' list",),
            (FIRST,),
        ),
        Case(
            "symlink-out-of-the-channel",
            link_outside("train/image_0001.jpg"),
            2,
            (
                "train/image_0001.jpg: is a symlink to",
                "outside the train channel; copy the file into the channel",
            ),
            MISSING,
        ),
        Case(
            "symlink-loop",
            link_loop("train/image_0001.jpg"),
            2,
            (
                "train/image_0001.jpg: is a symlink to loop-image_0001.jpg (Too many levels of symbolic links)",
            ),
            MISSING,
        ),
        Case(
            "fifo-image",
            fifo("train/image_0001.jpg"),
            2,
            ("train/image_0001.jpg: is a FIFO (named pipe); File-mode input must be regular files",),
            MISSING,
        ),
        Case(
            "fifo-annotation",
            fifo("validation_annotation/image_0000.json"),
            2,
            ("validation_annotation/image_0000.json: is a FIFO (named pipe)",),
            MISSING,
        ),
        Case(
            "10000x10000-png",
            write("train/image_0002.jpg", png_header(10000, 10000)),
            2,
            (
                "train/image_0002.jpg: image is 10000x10000 pixels (width x height), more than the 33,554,432 pixels",
                "downscale it",
            ),
        ),
        Case(
            "20000x20000-png",
            write("train/image_0002.jpg", png_header(20000, 20000)),
            2,
            ("train/image_0002.jpg: image is 400,000,000 pixels, more than the 33,554,432 pixels",),
        ),
        Case(
            "annotation-channel-text-csv",
            channel_type("train_annotation", "text/csv"),
            2,
            ("channel 'train_annotation' ContentType='text/csv': expected one of",),
        ),
        Case(
            "json-and-xml-in-one-channel",
            write("train_annotation/extra.xml", "<annotation/>"),
            2,
            ("channel 'train_annotation' holds both .json (4) and .xml (1) annotations",),
        ),
        # Hyperparameters the schema accepted and MXNet then crashed on or ran out of memory with.
        Case("image-shape-2049", set_hyperparameters(image_shape=2049), 2, ("image_shape", "2048")),
        Case("image-shape-100000", set_hyperparameters(image_shape=100000), 2, ("image_shape", "2048")),
        Case("label-width-1e9", set_hyperparameters(label_width=1000000000), 2, ("label_width", "10000")),
        Case(
            "more-memory-than-the-host",
            set_hyperparameters(image_shape=2048, mini_batch_size=1000),
            2,
            (
                "base_network=resnet-50 at image_shape=2048 with mini_batch_size=1000 needs at least about",
                "lower mini_batch_size or image_shape",
            ),
        ),
    ],
    "coco": [
        Case(
            "annotation-of-a-missing-image",
            coco_change(
                lambda d: d["annotations"].append(
                    {"id": 99, "image_id": 999, "category_id": 1, "bbox": [1, 1, 5, 5]}
                )
            ),
            2,
            (f"{COCO} annotation id 99: image_id=999 is not the id of an image in 'images'",),
        ),
        Case(
            "unknown-category",
            coco_change(lambda d: d["annotations"][0].update(category_id=42)),
            2,
            (f"{COCO} image id 1: annotation id 1: category_id 42 is not in 'categories' (ids 1, 3, 7)",),
        ),
        Case(
            "box-outside-the-image",
            coco_change(lambda d: d["annotations"][0].update(bbox=[5000, 0, 10, 10])),
            2,
            (
                f"{COCO} image id 1: annotation id 1: box (left 5000, top 0, width 10, height 10) lies outside the image",
            ),
        ),
        Case(
            "box-of-zero-size",
            coco_change(lambda d: d["annotations"][0].update(bbox=[5, 5, 0, 10])),
            2,
            (f"{COCO} image id 1: annotation id 1: box (left 5, top 5, width 0, height 10) has zero area",),
        ),
        Case(
            "duplicate-image-id",
            coco_change(lambda d: d["images"][1].update(id=1)),
            2,
            (f"{COCO} image id 1: listed twice ('image_0000.jpg' and 'image_0001.jpg')",),
        ),
        Case(
            "image-file-not-in-the-channel",
            coco_change(lambda d: d["images"][0].update(file_name="nope.jpg")),
            2,
            (
                f"{COCO} image id 1: annotation without image in the train channel: file_name 'nope.jpg' is not in "
                "the channel",
                "train/image_0000.jpg: image without annotation: add it to the 'images'",
            ),
        ),
        Case(
            "malformed-json",
            write(COCO, '{"images": ['),
            2,
            (f"{COCO}: not valid JSON (Expecting value",),
            MISSING,
        ),
        Case("fifo-instances-file", fifo(COCO), 2, (f"{COCO}: is a FIFO (named pipe)",), MISSING),
        Case(
            "fifo-image",
            fifo("validation/image_0001.jpg"),
            2,
            ("validation/image_0001.jpg: is a FIFO",),
            MISSING,
        ),
        Case(
            "every-training-box-a-crowd",
            coco_change(lambda d: [a.update(iscrowd=1) for a in d["annotations"]]),
            2,
            (
                "train + train_annotation: found 4 image(s) and no object (",
                "or every one is a crowd (iscrowd=1)",
            ),
        ),
        Case(
            "num-classes-differs",
            set_hyperparameters(num_classes=5),
            2,
            (
                "num_classes=5, but the COCO categories of train_annotation and validation_annotation define 3 "
                "class(es): 0=disc (category 1), 1=square (category 3), 2=triangle (category 7); set num_classes=3",
            ),
        ),
        Case(
            "all-problems-at-once",
            both(
                coco_change(lambda d: d["annotations"][0].update(category_id=42)),
                edit_json("validation_annotation/instances.json", lambda d: d["images"][0].update(width=-1)),
            ),
            2,
            (
                "category_id 42 is not in 'categories'",
                "validation_annotation/instances.json image id 1: width=-1",
            ),
        ),
    ],
    "voc": [
        # A misspelt or differently cased <object> dropped every box: with classes.txt nothing else
        # noticed, and every image trained as background.
        Case(
            "object-capitalised",
            each("train_annotation/*.xml", lambda t: t.replace("object>", "Object>")),
            2,
            (
                "train_annotation/image_0000.xml: <Object> is not an element of Pascal VOC's <annotation>: "
                "expected <object> (names are case-sensitive)",
                "train_annotation/image_0003.xml: <Object>",
            ),
        ),
        Case(
            "objects-misspelt",
            both(
                each("validation_annotation/image_0000.xml", lambda t: t.replace("object>", "objects>")),
                each("validation_annotation/image_0001.xml", lambda t: t.replace("object>", "obj>")),
            ),
            2,
            (
                "validation_annotation/image_0000.xml: <objects> is not an element",
                "validation_annotation/image_0001.xml: <obj> is not an element of Pascal VOC's <annotation>: "
                "expected <object>",
            ),
        ),
        Case(
            "difficult-capitalised",
            voc_insert(
                "validation_annotation/image_0000.xml", voc_object("disc").replace("difficult>", "Difficult>")
            ),
            2,
            ("validation_annotation/image_0000.xml object 1 ('disc'): <Difficult> is not an element",),
        ),
        Case(
            "no-object-in-train",
            each("train_annotation/*.xml", without_voc_objects),
            2,
            (
                "train + train_annotation: found 4 image(s) and no object (no XML file holds an <object> "
                "element); training on it would teach the detector that nothing is ever there",
            ),
        ),
        Case(
            "every-validation-object-difficult",
            each("validation_annotation/*.xml", lambda t: t.replace("<difficult>0<", "<difficult>1<")),
            2,
            (
                "validation + validation_annotation: found 2 image(s) whose ",
                "object(s) are all difficult or crowds, which mAP does not count; validation mAP is undefined",
            ),
        ),
        Case(
            "malformed-xml",
            write("train_annotation/image_0001.xml", "<annotation><filename>"),
            2,
            ("train_annotation/image_0001.xml: not well-formed XML (no element found: line 1",),
            MISSING,
        ),
        Case(
            "fifo-annotation",
            fifo("train_annotation/image_0002.xml"),
            2,
            ("train_annotation/image_0002.xml: is a FIFO (named pipe)",),
            MISSING,
        ),
        Case("fifo-image", fifo("train/image_0002.jpg"), 2, ("train/image_0002.jpg: is a FIFO",), MISSING),
        Case(
            "name-not-in-classes-txt",
            voc_insert("train_annotation/image_0001.xml", voc_object("cat")),
            2,
            (
                "train_annotation/image_0001.xml object 2 ('cat'): name 'cat' is not a class of "
                "train_annotation/classes.txt",
            ),
        ),
        Case(
            "box-of-zero-size",
            voc_insert("validation_annotation/image_0000.xml", voc_object("disc", xmax=3)),
            2,
            (
                "validation_annotation/image_0000.xml object 1 ('disc'): box (left 4, top 4, width -1, height 16) has zero area",
            ),
        ),
        Case(
            "difficult-not-0-or-1",
            voc_insert("train_annotation/image_0000.xml", voc_object("disc", difficult="yes")),
            2,
            ("train_annotation/image_0000.xml object 2 ('disc'): <difficult> 'yes': expected 0 or 1",),
        ),
        Case(
            "num-classes-differs",
            set_hyperparameters(num_classes=2),
            2,
            (
                "num_classes=2, but train_annotation/classes.txt define 3 class(es): 0=disc, 1=square, 2=triangle",
            ),
        ),
    ],
    "recordio": [
        Case(
            "20000x20000-png-in-a-record",
            rewrite_records("train", huge_first_image),
            2,
            ("train/train.rec record 1 (id 0): image is 400,000,000 pixels, more than the 33,554,432",),
        ),
        Case(
            "no-object-in-train",
            rewrite_records("train", no_objects),
            2,
            ("train/train.rec: found 4 image(s) and no object (every record's label lists no object)",),
        ),
    ],
}
TABLE = [
    pytest.param(content, case, id=f"{content}-{case.id}")
    for content, cases in CASES.items()
    for case in cases
]


@pytest.mark.parametrize(("content", "case"), TABLE)
def test_bad_input_is_a_named_client_error(bases, tmp_path, content, case):
    code, failure = validate(bases[content], tmp_path / "ml", "object-detection", case.edit)
    check(case, code, failure)


def test_coco_crowds_and_voc_difficult_objects_stay_out_of_map(bases, tmp_path):
    """What validate accepts: crowd boxes (left out of training), difficult objects, classes.txt."""
    from sagemaker_cv import algorithms
    from sagemaker_cv.algorithms.detection import data
    from sagemaker_cv.contract.paths import MLPaths
    from sagemaker_cv.training.job import load_job

    crowd = {"id": 50, "image_id": 1, "category_id": 3, "bbox": [2, 2, 20, 20], "iscrowd": 1}
    for content, edit in (
        (
            "coco",
            both(
                coco_change(lambda d: d["annotations"].append(crowd)),
                edit_json("validation_annotation/instances.json", lambda d: d["annotations"].append(crowd)),
            ),
        ),
        (
            "voc",
            both(
                voc_insert("train_annotation/image_0000.xml", voc_object("square", difficult="1")),
                voc_insert("validation_annotation/image_0000.xml", voc_object("square", difficult="1")),
            ),
        ),
    ):
        root = tmp_path / content
        edit = both(edit, set_hyperparameters(label_width=17))
        code, failure = validate(bases[content], root, "object-detection", edit)
        assert code == 0, failure
        job = load_job(MLPaths(root), algorithms.get("object-detection"), num_gpus=0)
        inputs = data.resolve_inputs(job.channels, job.paths)
        train = data.prepare(inputs, "train", 3, 17, tmp_path / f"{content}-scratch")
        validation = data.prepare(inputs, "validation", 3, 17, tmp_path / f"{content}-scratch")
        flags = validation.difficult[0]
        assert flags.tolist()[-1] is True and not np.any(flags[:-1])
        assert train.difficult == ({} if content == "coco" else {0: train.difficult[0]})


def test_a_full_scratch_volume_is_named_as_such(bases, tmp_path, monkeypatch):
    """Writing the prepared .rec fills the disk: the failure names the scratch file, not model/."""
    import errno

    from sagemaker_cv.algorithms.detection import annotated

    def full(payload: bytes) -> bytes:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(annotated, "frame", full)
    code, failure = validate(bases["images"], tmp_path / "ml", "object-detection", lambda root: None)
    assert code == 2, failure
    assert "sagemaker-cv-scratch" in failure and "train.rec: no space left on the device" in failure
    assert "while writing the prepared training data" in failure and "/model" not in failure
