"""Tier: fast (evaluates the session's reference jobs, tests/integration/trained.py; a few seconds
each). `sagemaker-cv evaluate` for every algorithm: its overall figure is the one the training log
reported for the saved (best) model on the same data, and its per-class figures agree with an
independent reading of the data and the confusion counts."""

from __future__ import annotations

import json
import re
import shutil

import mxnet as mx
import numpy as np
import pytest
from ml_tree import in_process, set_hyperparameters

from sagemaker_cv.algorithms.detection.classes import ClassMap
from sagemaker_cv.cli import main
from sagemaker_cv.tools.detection_demo import write_detection_tree

SHAPES = ("disc", "square", "triangle")  # the example data's classes, in class id order


def evaluate(capsys, *args) -> tuple[int, dict | None, str, str]:
    code = main(["evaluate", *map(str, args)])
    out, err = capsys.readouterr()
    found = re.search(r"Report written to (\S+)", out)
    return code, json.loads(open(found.group(1)).read()) if found else None, out, err


def rec_labels(path):
    """Every record's label vector, read with MXNet's recordio module."""
    reader = mx.recordio.MXRecordIO(str(path), "r")
    labels = []
    while (item := reader.read()) is not None:
        header, _ = mx.recordio.unpack(item)
        labels.append(np.atleast_1d(header.label))
    reader.close()
    return labels


@pytest.mark.fast
def test_image_classification(trained, capsys, tmp_path):
    job = trained("image-classification")
    code, report, out, _ = evaluate(
        capsys, "--model", job.archive, "--ml-root", job.root, "--output", tmp_path / "r.json"
    )
    assert code == 0, out[-2000:]
    best = max(job.run.values("Validation-accuracy"))  # the saved model is the best epoch's
    assert f"{report['validation']['accuracy']:f}" == f"{best:f}"
    matrix = np.array(report["confusion_matrix"])
    truth = np.array(
        [int(label[0]) for label in rec_labels(job.root / "input/data/validation/validation.rec")]
    )
    assert matrix.sum(axis=1).tolist() == np.bincount(truth, minlength=3).tolist()
    assert np.trace(matrix) / matrix.sum() == pytest.approx(report["validation"]["accuracy"])
    for c, row in enumerate(report["classes"]):
        predicted = matrix[:, c].sum()
        assert row["recall"] == pytest.approx(matrix[c, c] / matrix[c].sum())
        assert row["precision"] == (pytest.approx(matrix[c, c] / predicted) if predicted else None)
    assert "Per class:" in out and "Confusion matrix" in out


@pytest.mark.fast
def test_object_detection(trained, capsys, tmp_path):
    job = trained("object-detection")
    code, report, out, _ = evaluate(
        capsys, "--model", job.model_dir, "--ml-root", job.root, "--output", tmp_path / "r.json"
    )
    assert code == 0, out[-2000:]
    logged = [float(v) for v in re.findall(r"validation mAP <score>=\(([^)]*)\)", job.run.out)]
    assert report["validation"]["mAP"] == max(logged)  # the log prints the value whole
    aps = [row["AP"] for row in report["classes"]]
    assert (
        report["figures"]["mAP@0.5 (VOC07 11-point)"]
        == pytest.approx(np.mean(aps))
        == pytest.approx(max(logged))
    )
    objects = {}
    for label in rec_labels(job.root / "input/data/validation/validation.rec"):
        header, width = int(label[0]), int(label[1])
        for cls in label[header:].reshape(-1, width)[:, 0]:
            objects[int(cls)] = objects.get(int(cls), 0) + 1
    assert {row["class"]: row["objects"] for row in report["classes"]} == objects
    assert all(0 <= row["AP@[.5:.95]"] <= row["AP"] + 1e-9 or row["AP"] == 0 for row in report["classes"])


def with_class_map(job, target, names: tuple[str, ...]):
    """A copy of a trained detection model whose class_map.json names its classes `names`."""
    model = shutil.copytree(job.model_dir, target)
    (model / "class_map.json").write_text(ClassMap("voc", "classes.txt", names).text())
    return model


@pytest.mark.fast
def test_object_detection_names_the_classes_from_the_models_class_map(trained, capsys, tmp_path):
    """The reference job's data (RecordIO) names no class: the model's class_map.json does."""
    job = trained("object-detection")
    model = with_class_map(job, tmp_path / "model", SHAPES)
    code, report, out, _ = evaluate(
        capsys, "--model", model, "--ml-root", job.root, "--output", tmp_path / "r.json"
    )
    assert code == 0, out[-2000:]
    assert report["classes"] and [row["name"] for row in report["classes"]] == [
        SHAPES[row["class"]] for row in report["classes"]
    ]
    code, report, _, _ = evaluate(
        capsys, "--model", job.model_dir, "--ml-root", job.root, "--output", tmp_path / "s.json"
    )
    assert code == 0 and all("name" not in row for row in report["classes"])


@pytest.mark.fast
def test_object_detection_refuses_data_whose_classes_are_not_the_models(trained, capsys, tmp_path):
    """VOC data whose class ids would mean other classes than the model's: per-class AP would be
    misaligned without a word."""
    job = trained("object-detection")
    root = tmp_path / "ml"
    write_detection_tree(
        root, content="voc", train_images=4, val_images=2, hyperparameters=job.hyperparameters
    )
    swapped = with_class_map(job, tmp_path / "swapped", ("square", "disc", "triangle"))
    code, report, _, err = evaluate(capsys, "--model", swapped, "--ml-root", root)
    assert (code, report) == (2, None)
    assert err.strip() == (
        f"sagemaker-cv evaluate: model {swapped}: its class_map.json has 0=square, 1=disc, 2=triangle, but "
        "train_annotation/classes.txt define 0=disc, 1=square, 2=triangle; class 0 is 'square' in the model and "
        "'disc' in the data, so the model's class ids would be read as other classes; a classes.txt in the "
        "annotation channel fixes VOC's class ids: list the model's classes in its order (square, disc, triangle)"
    )
    other = with_class_map(job, tmp_path / "other", ("cat", "square", "triangle"))
    code, _, _, err = evaluate(capsys, "--model", other, "--ml-root", root)
    assert code == 2 and "class 0 is 'cat' in the model and 'disc' in the data" in err
    assert "the model knows no class 'disc'" in err
    same = with_class_map(job, tmp_path / "same", SHAPES)
    code, report, out, _ = evaluate(
        capsys, "--model", same, "--ml-root", root, "--output", tmp_path / "r.json"
    )
    assert code == 0, out[-2000:]
    assert all(row["name"] == SHAPES[row["class"]] for row in report["classes"])


@pytest.mark.fast
def test_semantic_segmentation(trained, capsys, tmp_path):
    job = trained("semantic-segmentation")
    code, report, out, _ = evaluate(
        capsys, "--model", job.archive, "--ml-root", job.root, "--output", tmp_path / "r.json"
    )
    assert code == 0, out[-2000:]
    best = max(float(v) for v in re.findall(r"validation mIOU: (\S+) \.", job.run.out))
    assert report["validation"]["mIOU"] == best
    matrix = np.array(report["confusion_matrix"], dtype=float)
    inter = np.diag(matrix)
    union = matrix.sum(axis=0) + matrix.sum(axis=1) - inter
    present = union > 0
    assert [row["IoU"] for row in report["classes"]] == [
        pytest.approx(i / u) if u else None for i, u in zip(inter, union)
    ]
    assert np.mean(inter[present] / union[present]) == pytest.approx(best)
    assert inter.sum() / matrix.sum() == pytest.approx(report["validation"]["pixel_accuracy"])


@pytest.mark.fast
def test_bad_data_gets_the_client_error_validate_gives(trained, capsys, tmp_path):
    root = trained("image-classification").copy(tmp_path / "ml")
    rec = root / "input/data/validation/validation.rec"
    data = bytearray(rec.read_bytes())
    data[4:8] = b"\xff\xff\xff\x0f"  # the first record's header announces more bytes than the file has
    rec.write_bytes(bytes(data))
    validated = in_process(root, "--algorithm", "image-classification")
    assert validated.code == 2
    problem = validated.failure.removeprefix("ClientError: ")
    code, report, _, err = evaluate(capsys, "--model", root / "model", "--ml-root", root)
    assert (code, report) == (2, None)
    assert err.strip() == f"sagemaker-cv evaluate: {problem}"


@pytest.mark.fast
def test_a_tree_with_only_a_test_channel(trained, capsys, tmp_path):
    job = trained("image-classification")
    root = job.copy(tmp_path / "ml")
    (root / "input/config/inputdataconfig.json").unlink()  # channels from the directories
    (root / "input/data/validation").rename(root / "input/data/test")
    for gone in ("train",):
        for f in (root / "input/data" / gone).iterdir():
            f.unlink()
        (root / "input/data" / gone).rmdir()
    code, report, out, _ = evaluate(capsys, "--model", job.archive, "--ml-root", root, "--channel", "test")
    assert code == 0, out[-2000:]
    assert report["channel"] == "test" and report["samples"] == 12
    assert (root / "output/data/evaluation-test.json").is_file()
    assert f"{report['validation']['accuracy']:f}" == f"{max(job.run.values('Validation-accuracy')):f}"


@pytest.mark.fast
def test_refusals_name_the_thing_and_what_would_do(trained, capsys, tmp_path):
    job = trained("image-classification")
    code, _, _, err = evaluate(capsys, "--model", job.archive, "--ml-root", job.root, "--channel", "nope")
    assert code == 2 and "--channel 'nope'" in err and "it has train, validation" in err
    code, _, _, err = evaluate(
        capsys, "--model", job.archive, "--ml-root", job.root, "--algorithm", "object-detection"
    )
    assert code == 2 and "algorithm 'object-detection' was asked for" in err
    root = job.copy(tmp_path / "ml")
    set_hyperparameters(root, num_classes=4)
    code, _, _, err = evaluate(capsys, "--model", job.archive, "--ml-root", root)
    assert code == 2
    assert "its network differs from the one" in err and "num_classes: the model has 3, this job has 4" in err
