"""Object detection from COCO instances files and Pascal VOC XML: one dataset written as the
built-in's per-image JSON, as COCO and as VOC gives identical records (labels, images, ids); the
class map goes into the model directory; one epoch trains from each format.

Tier: fast (the parses and packs, in this process) and slow (`test_one_epoch_trains_from_*`:
trains SSD ResNet-50 at 300 px for one epoch of four images, about 20 s each).
"""

from __future__ import annotations

import json
import shutil

import mxnet as mx
import numpy as np
import pytest
from ml_tree import train

from sagemaker_cv import algorithms
from sagemaker_cv.algorithms.detection import data
from sagemaker_cv.contract.paths import MLPaths
from sagemaker_cv.tools.detection_demo import write_detection_tree
from sagemaker_cv.training.job import load_job

HP = {
    "mini_batch_size": "2",
    "epochs": "1",
    "label_width": "17",
    "base_network": "resnet-50",
    "use_pretrained_model": "0",
}
FORMATS = ("images", "coco", "voc")


def write(root, content, **kwargs):
    kwargs.setdefault("train_images", 6)
    kwargs.setdefault("val_images", 3)
    write_detection_tree(root, content=content, max_objects=3, hyperparameters=HP, **kwargs)
    return root


def records(root, scratch) -> dict[str, list[tuple]]:
    """Every packed record of both splits, as (id, label values, image bytes)."""
    job = load_job(MLPaths(root), algorithms.get("object-detection"), num_gpus=0)
    inputs = data.resolve_inputs(job.channels, job.paths)
    found = {}
    for split in data.SPLITS:
        prepared = data.prepare(inputs, split, 3, 17, scratch)
        reader = mx.recordio.MXRecordIO(str(prepared.rec), "r")
        found[split] = []
        while (item := reader.read()) is not None:
            header, image = mx.recordio.unpack(item)
            found[split].append((header.id, np.asarray(header.label, np.float32), image))
        reader.close()
    return found, inputs


@pytest.mark.fast
def test_one_dataset_as_json_coco_and_voc_gives_identical_records(tmp_path):
    packed = {}
    for content in FORMATS:
        packed[content], _ = records(write(tmp_path / content, content), tmp_path / f"scratch-{content}")
    for split in data.SPLITS:
        reference = packed["images"][split]
        assert len(reference) == (6 if split == "train" else 3)
        assert any(len(label) > 7 for _, label, _ in reference)  # images with several objects
        for content in ("coco", "voc"):
            other = packed[content][split]
            assert [r[0] for r in other] == [r[0] for r in reference]
            for (_, label, image), (_, expected, expected_image) in zip(other, reference):
                assert np.array_equal(label, expected), (content, split, label, expected)
                assert image == expected_image


@pytest.mark.fast
def test_the_class_map_goes_into_the_model_directory(tmp_path):
    expected = {
        "coco": {
            "format": "coco",
            "classes": [
                {"class_id": 0, "name": "disc", "category_id": 1},
                {"class_id": 1, "name": "square", "category_id": 3},
                {"class_id": 2, "name": "triangle", "category_id": 7},
            ],
        },
        "voc": {
            "format": "voc",
            "classes": [{"class_id": i, "name": n} for i, n in enumerate(("disc", "square", "triangle"))],
        },
    }
    for content in FORMATS:
        _, inputs = records(write(tmp_path / content, content), tmp_path / f"scratch-{content}")
        model = tmp_path / f"model-{content}"
        model.mkdir()
        written = data.write_class_map(inputs.annotated.class_map, model)
        if content == "images":  # the per-image JSON names no classes
            assert written == []
        else:
            assert written == [model / "class_map.json"]
            assert json.loads(written[0].read_text()) == expected[content]


def one_epoch(tmp_path, content):
    root = write(tmp_path / "ml", content, train_images=4, val_images=2)
    run = train(root, "--algorithm", "object-detection")
    assert run.code == 0, run.out[-3000:]
    assert "class_map.json" in run.model_files
    assert "validation mAP <score>=(" in run.out
    return run


@pytest.mark.slow
def test_one_epoch_trains_from_coco(tmp_path):
    run = one_epoch(tmp_path, "coco")
    assert (
        "Class map from the COCO categories of train_annotation and validation_annotation: "
        "0=disc (category 1), 1=square (category 3), 2=triangle (category 7)" in run.out
    )
    assert json.loads((run.root / "model/class_map.json").read_text())["format"] == "coco"


@pytest.mark.slow
def test_one_epoch_trains_from_voc(tmp_path):
    run = one_epoch(tmp_path, "voc")
    assert "Class map from train_annotation/classes.txt: 0=disc, 1=square, 2=triangle" in run.out


@pytest.mark.slow
def test_a_model_trained_on_from_unnamed_data_keeps_the_models_class_names(tmp_path):
    """Incremental training from a VOC-trained model on RecordIO (no names): the new model's
    class_map.json is the earlier one's, since the class ids are kept."""
    first = one_epoch(tmp_path / "first", "voc")
    root = tmp_path / "second"
    write_detection_tree(
        root, content="recordio", train_images=4, val_images=2, max_objects=3, hyperparameters=HP
    )
    shutil.copytree(first.root / "model", root / "input/data/model")
    config = root / "input/config/inputdataconfig.json"
    channels = json.loads(config.read_text())
    channels["model"] = {"ContentType": "application/x-sagemaker-model", "TrainingInputMode": "File"}
    config.write_text(json.dumps(channels))
    run = train(root, "--algorithm", "object-detection")
    assert run.code == 0, run.out[-3000:]
    assert "Class names from the class_map.json of channel 'model': 0=disc, 1=square, 2=triangle" in run.out
    assert (root / "model/class_map.json").read_text() == (first.root / "model/class_map.json").read_text()
