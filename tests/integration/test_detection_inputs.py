"""Object detection inputs: RecordIO (made by MXNet's im2rec --pack-label, or record by record here)
and images with JSON annotations. Every defect ends in a ClientError naming the file, the record or
object, the value and what is valid; undecodable images are skipped and counted. The checks run as
`train` runs them (the task's check_data), and through the command line for the failure file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import mxnet as mx
import numpy as np
import pytest
from ml_tree import in_process, set_hyperparameters

from sagemaker_cv import algorithms
from sagemaker_cv.algorithms.detection.data import det_iter
from sagemaker_cv.algorithms.detection.labels import ground_truth
from sagemaker_cv.algorithms.detection.task import DetectionTask
from sagemaker_cv.contract.errors import ClientError
from sagemaker_cv.contract.paths import MLPaths
from sagemaker_cv.tools.detection_demo import draw_picture, write_detection_tree
from sagemaker_cv.training.devices import plan_devices
from sagemaker_cv.training.job import load_job

pytestmark = pytest.mark.fast

HP = {"mini_batch_size": "2", "epochs": "1"}


@pytest.fixture(scope="module")
def templates(tmp_path_factory):
    """One tree per format, written once (im2rec takes seconds); tests get copies."""
    made = {}

    def template(content: str, train_images: int, val_images: int) -> Path:
        key = (content, train_images, val_images)
        if key not in made:
            made[key] = tmp_path_factory.mktemp("template") / content
            write_detection_tree(
                made[key],
                content=content,
                train_images=train_images,
                val_images=val_images,
                hyperparameters=HP,
            )
        return made[key]

    return template


@pytest.fixture
def tree(tmp_path, templates):
    def make(content="images", train_images=6, val_images=3, **hp):
        root = tmp_path / f"{content}-{len(list(tmp_path.iterdir()))}"
        shutil.copytree(templates(content, train_images, val_images), root)
        if hp:
            set_hyperparameters(root, **hp)
        return root

    return make


def check(root: Path, scratch: Path):
    """What `train` checks before it builds anything: the task's check_data."""
    job = load_job(MLPaths(root), algorithms.get("object-detection"), num_gpus=0)
    return DetectionTask(job, plan_devices(0), scratch).check_data()


def problems(root: Path, scratch: Path) -> str:
    with pytest.raises(ClientError) as info:
        check(root, scratch)
    return "\n".join(info.value.problems)


def jpeg(size=(64, 48), seed=0) -> bytes:
    image, _ = draw_picture(size, [0], np.random.default_rng(seed))
    return cv2.imencode(".jpg", image)[1].tobytes()


def write_records(path: Path, labels: list, images: list[bytes] | None = None) -> None:
    """A .rec with these label vectors (as im2rec --pack-label writes them: flag = their length)."""
    writer = mx.recordio.MXRecordIO(str(path), "w")
    for i, label in enumerate(labels):
        label = np.asarray(label, dtype=np.float32)
        buf = images[i] if images else jpeg(seed=i)
        writer.write(mx.recordio.pack(mx.recordio.IRHeader(len(label), label, i, 0), buf))
    writer.close()


GOOD = [2, 5, 0, 0.1, 0.1, 0.6, 0.7]


def recordio_tree(tree, train_labels, images=None, **hp):
    root = tree("recordio", **hp)
    rec = next((root / "input/data/train").glob("*.rec"))
    write_records(rec, train_labels, images)
    return root


# ---- the two formats read back exactly ----------------------------------------------------------


def test_im2rec_pack_label_records_reach_the_iterator_unchanged(tree, tmp_path):
    root = tree("recordio", train_images=6)
    rec = next((root / "input/data/train").glob("*.rec"))
    header, _ = mx.recordio.unpack(mx.recordio.MXRecordIO(str(rec), "r").read())
    assert header.flag >= 7 and header.label[:2].tolist() == [2, 5]  # written by im2rec --pack-label
    prepared = check(root, tmp_path / "s")
    train = prepared.data["train"]
    assert train.rec == rec and train.count == 6  # nothing to fix: read in place
    it = det_iter(train, batch_size=6, image_shape=300, label_width=12, train=False)
    batch = next(iter(it))
    boxes, ids = ground_truth(batch.label[0].asnumpy(), 1.0)
    # Record by record, the iterator's objects are the .lst's (4 decimals, as the .lst holds them).
    reader = mx.recordio.MXRecordIO(str(rec), "r")
    for i in range(6):
        header, _ = mx.recordio.unpack(reader.read())
        objects = header.label[2:].reshape(-1, 5)
        n = len(objects)
        assert ids[i, :n, 0].tolist() == objects[:, 0].tolist()
        assert np.allclose(boxes[i, :n], objects[:, 1:], atol=1e-6)
        assert np.all(ids[i, n:] == -1)
    assert batch.data[0].shape == (6, 3, 300, 300)


def test_images_and_json_are_packed_with_normalised_corners(tree, tmp_path):
    root = tree("images", train_images=4, val_images=2)
    prepared = check(root, tmp_path / "s")
    assert prepared.counts == {"train": 4, "validation": 2}
    train = prepared.data["train"]
    it = det_iter(train, batch_size=4, image_shape=300, label_width=12, train=False)
    boxes, ids = ground_truth(next(iter(it)).label[0].asnumpy(), 1.0)
    for i in range(4):
        doc = json.loads((root / f"input/data/train_annotation/image_{i:04d}.json").read_text())
        w, h = doc["image_size"][0]["width"], doc["image_size"][0]["height"]
        expected = [
            [a["left"] / w, a["top"] / h, (a["left"] + a["width"]) / w, (a["top"] + a["height"]) / h]
            for a in doc["annotations"]
        ]
        n = len(expected)
        assert ids[i, :n, 0].tolist() == [a["class_id"] for a in doc["annotations"]]
        assert np.allclose(boxes[i, :n], expected, atol=1e-6)


def test_the_iterator_gives_rgb_pixels(tree, tmp_path):
    root = tree("images", train_images=2, val_images=2)
    red = np.zeros((40, 40, 3), np.uint8)
    red[..., 2] = 255  # BGR
    (root / "input/data/train/image_0000.jpg").write_bytes(cv2.imencode(".png", red)[1].tobytes())
    note = root / "input/data/train_annotation/image_0000.json"
    note.write_text(json.dumps({"file": "image_0000.jpg", "annotations": []}))
    it = det_iter(
        check(root, tmp_path / "s").data["train"], batch_size=2, image_shape=300, label_width=12, train=False
    )
    pixels = next(iter(it)).data[0][0].asnumpy()
    assert pixels[0].min() > 250 and pixels[1].max() < 5 and pixels[2].max() < 5


def test_extra_header_values_and_images_without_objects_train(tree, tmp_path):
    root = recordio_tree(tree, [[4, 6, 7, 8, 1, 0.1, 0.1, 0.5, 0.5, 9], [2, 5], GOOD, GOOD, GOOD, GOOD])
    train = check(root, tmp_path / "s").data["train"]
    assert train.count == 6 and train.empty == 1 and train.rec != root  # the empty one was repacked
    batch = next(iter(det_iter(train, batch_size=6, image_shape=300, label_width=12, train=False)))
    boxes, ids = ground_truth(batch.label[0].asnumpy(), 1.0)
    assert ids[0, 0, 0] == 1 and np.allclose(boxes[0, 0], [0.1, 0.1, 0.5, 0.5])
    assert np.all(ids[1] == -1)


# ---- RecordIO defects ----------------------------------------------------------------------------


def test_pixel_corners_from_im2rec_are_called_what_they_are(tree, tmp_path):
    from sagemaker_cv.tools.demo import im2rec

    root = tree("recordio")
    work = tmp_path / "work"
    work.mkdir()
    (work / "a.jpg").write_bytes(jpeg())
    lst = work / "train.lst"
    lst.write_text("0\t2\t5\t0\t12\t8\t40\t30\ta.jpg\n1\t2\t5\t1\t0.1\t0.1\t0.5\t0.5\ta.jpg\n")
    rec = im2rec(lst, work, pack_label=True)
    train_dir = root / "input/data/train"
    next(train_dir.glob("*.rec")).unlink()
    rec.replace(train_dir / "train.rec")
    found = problems(root, tmp_path / "s")
    assert (
        "train/train.rec record 1 (id 0) object 0: box (12, 8, 40, 30) is not in [0, 1]: RecordIO corners are "
        "fractions of the image width and height" in found
    )
    assert "these look like absolute pixel coordinates" in found


@pytest.mark.parametrize(
    ("label", "fragment"),
    [
        (
            [2, 5, 0, 0.1, 0.1, 0.6],
            "record 3 (id 2): 4 value(s) after the 2-value header do not make whole objects",
        ),
        (
            [2, 5, 3, 0.1, 0.1, 0.6, 0.7],
            "record 3 (id 2) object 0: class_id 3 is not a class index in [0, 2]",
        ),
        ([2, 5, -1, 0.1, 0.1, 0.6, 0.7], "record 3 (id 2) object 0: class_id -1 is not a class index"),
        ([2, 5, 0, 0.5, 0.1, 0.5, 0.7], "record 3 (id 2) object 0: box (0.5, 0.1, 0.5, 0.7) has zero area"),
        (
            [2, 5, 0, 0.1, 0.1, 1.4, 0.7],
            "record 3 (id 2) object 0: box (0.1, 0.1, 1.4, 0.7) lies outside [0, 1]",
        ),
        (
            [2, 5, 0, 0.1, 0.1, 0.6, 0.7, 1, 0.1, 0.1, 0.2, 0.2, 2, 0.3, 0.3, 0.4, 0.4],
            "record 3 (id 2): its 3 object(s) need label_width >= 17, but label_width=12",
        ),
    ],
)
def test_recordio_defects_name_the_record(tree, tmp_path, label, fragment):
    root = recordio_tree(tree, [GOOD, GOOD, label, GOOD], label_width="12")
    assert fragment in problems(root, tmp_path / "s")


def test_slight_overhang_is_clipped_and_padding_beyond_label_width_dropped(tree, tmp_path, caplog):
    padded = [2, 5, 0, 0.1, 0.1, 0.6, 0.7, *([-1] * 10)]
    root = recordio_tree(tree, [[2, 5, 1, -0.02, 0.1, 1.03, 0.7], padded, GOOD, GOOD], label_width="12")
    train = check(root, tmp_path / "s").data["train"]
    assert train.clipped == 1 and train.count == 4
    assert (
        "train/train.rec: 1 box(es) stuck out of their image slightly and were clipped to it" in caplog.text
    )
    boxes, ids = ground_truth(
        next(iter(det_iter(train, batch_size=4, image_shape=300, label_width=12, train=False)))
        .label[0]
        .asnumpy(),
        1.0,
    )
    assert np.allclose(boxes[0, 0], [0.0, 0.1, 1.0, 0.7]) and ids[1, 0, 0] == 0


def test_undecodable_images_are_skipped_and_counted(tree, tmp_path):
    images = [jpeg(seed=i) for i in range(5)] + [b"not an image"]
    root = recordio_tree(tree, [GOOD] * 6, images)
    prepared = check(root, tmp_path / "s")
    train = prepared.data["train"]
    assert train.count == 5 and train.skipped == ["train/train.rec record 6 (id 5)"]
    assert prepared.notes == (
        "Skipped 1 undecodable image(s) in train/train.rec: train/train.rec record 6 (id 5)",
    )
    root = recordio_tree(tree, [GOOD] * 2, [b"x", b"y"])
    assert "train/train.rec: none of its 2 image(s) could be decoded" in problems(root, tmp_path / "t")


# ---- images + JSON defects -----------------------------------------------------------------------


def test_image_without_annotation_and_annotation_without_image(tree, tmp_path):
    root = tree("images")
    data = root / "input/data"
    (data / "train_annotation/image_0001.json").unlink()
    (data / "validation/image_0002.jpg").unlink()
    found = problems(root, tmp_path / "s")
    assert "train/image_0001.jpg: image without annotation: add train_annotation/image_0001.json" in found
    assert (
        "validation_annotation/image_0002.json: annotation without image in the validation channel: 'file' "
        "'image_0002.jpg' is not in the channel and no image named image_0002.jpg/.jpeg/.png was found"
    ) in found


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (
            lambda d: d["annotations"][0].update(class_id=7),
            "object 0: class_id 7 is not a class index in [0, 2]",
        ),
        (lambda d: d["annotations"][0].update(width=0), "has zero area"),
        (
            lambda d: d["annotations"][0].update(left=5000),
            "lies outside the image by more than 5% of the image",
        ),
        (lambda d: d.update(image_size=[{"width": 9, "height": 9, "depth": 3}]), "image_size says 9x9"),
    ],
)
def test_json_defects_name_the_file_and_object(tree, tmp_path, edit, fragment):
    root = tree("images")
    path = root / "input/data/train_annotation/image_0003.json"
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))
    found = problems(root, tmp_path / "s")
    assert "train_annotation/image_0003.json" in found and fragment in found, found


def test_invalid_json_and_undecodable_images(tree, tmp_path):
    root = tree("images")
    (root / "input/data/train_annotation/image_0000.json").write_text("{not json")
    assert "train_annotation/image_0000.json: not valid JSON" in problems(root, tmp_path / "s")
    root = tree("images", train_images=5)
    (root / "input/data/train/image_0004.jpg").write_bytes(b"garbage")
    train = check(root, tmp_path / "t").data["train"]
    assert train.count == 4 and train.skipped == ["train/image_0004.jpg"]


def test_channel_defects_through_the_command_line(tree):
    root = tree("images")
    config = root / "input/config/inputdataconfig.json"
    channels = json.loads(config.read_text())
    del channels["validation_annotation"]
    channels["train"]["TrainingInputMode"] = "Pipe"
    channels["validation"]["RecordWrapperType"] = "RecordIO"
    channels["extra"] = {"ContentType": "application/x-recordio"}
    config.write_text(json.dumps(channels))
    run = in_process(root, "--algorithm", "object-detection")
    assert run.code == 2 and run.failure.startswith("ClientError: ")
    for fragment in (
        "channel 'train' ContentType='image/jpeg' in Pipe mode: expected application/x-recordio",
        "channel 'validation' RecordWrapperType=RecordIO (an augmented manifest) in File mode: SageMaker "
        "streams augmented manifests in Pipe mode only",
        "channel 'extra': not used by object detection",
        "channel 'validation_annotation' is missing",
    ):
        assert fragment in run.failure, run.failure


def test_validate_passes_and_reports_counts(tree):
    root = tree("images", train_images=4, val_images=2)
    set_hyperparameters(root, _kvstore="device", _num_kv_servers="auto", _begin_epoch="0", nms_topk="200")
    run = in_process(root, "--algorithm", "object-detection")
    assert run.code == 0, run.out[-2000:]
    assert "Validation passed: train: 4 samples, validation: 2 samples" in run.out
    assert (
        "hyperparameter _kvstore='device' is accepted for compatibility with the built-in and ignored"
        in run.out
    )
