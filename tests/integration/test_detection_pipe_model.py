"""Object detection through the real command line with SageMaker's other inputs: RecordIO streamed
through FIFOs epoch after epoch (every record split on the wire), then a second job that starts from
the first one's model.tar.gz in the `model` channel, and one whose network differs, refused; an
augmented manifest of Ground Truth bounding boxes in Pipe mode."""

from __future__ import annotations

import json
import shutil

import mxnet as mx
import numpy as np
from ml_tree import cli_env, in_process, set_hyperparameters, train
from test_pipe_training import set_channels, with_magic_ids

from sagemaker_cv.tools.detection_demo import write_detection_tree

HP = {"mini_batch_size": "2", "epochs": "2", "optimizer": "sgd", "learning_rate": "0.0001"}
FILE = {"ContentType": "application/x-recordio", "TrainingInputMode": "File", "RecordWrapperType": "None"}
PIPE = {**FILE, "TrainingInputMode": "Pipe"}


def test_pipe_mode_then_a_second_job_from_its_model(tmp_path, feeders):
    root = tmp_path / "first"
    write_detection_tree(root, content="recordio", train_images=4, val_images=2, hyperparameters=HP)
    recs = {}
    for split in ("train", "validation"):
        channel = root / "input" / "data" / split
        rec = next(channel.glob("*.rec"))
        recs[split] = with_magic_ids(rec, tmp_path / f"{split}.rec")
        shutil.rmtree(channel)
    set_channels(root, train=PIPE, validation=PIPE)
    started = [feeders(root, split, 2, recs[split], env=cli_env()) for split in ("train", "validation")]
    archive = tmp_path / "out" / "model.tar.gz"
    run = train(
        root, "--algorithm", "object-detection", "--model-archive", str(archive), SAGEMAKER_CV_PIPE_TIMEOUT=60
    )
    assert run.code == 0, run.out[-3000:]
    for f in started:
        assert f.wait(timeout=30) == 0, f.stderr.read()
    for n in range(2):
        assert f"Reading {root}/input/data/train_{n} (Pipe mode)" in run.out
        assert f"Reading {root}/input/data/validation_{n} (Pipe mode)" in run.out
    assert run.out.count("validation mAP <score>=") == 2
    assert run.model_files == ["hyperparams.json", "model_algo_1-0000.params", "model_algo_1-symbol.json"]

    # A second job in File mode starts from the first one's archive; a learning rate of 1e-10 keeps
    # its weights (0 is outside the built-in's range).
    second = tmp_path / "second"
    shutil.copytree(root, second, ignore=shutil.ignore_patterns("model", "output"))
    for split, rec in recs.items():
        (second / "input" / "data" / split).mkdir()
        shutil.copy(rec, second / "input" / "data" / split / rec.name)
    (second / "input" / "data" / "model").mkdir()
    shutil.copy(archive, second / "input" / "data" / "model" / "model.tar.gz")
    model = {"ContentType": "application/x-sagemaker-model", "TrainingInputMode": "File"}
    set_channels(second, train=FILE, validation=FILE, model=model)
    set_hyperparameters(second, epochs="1", learning_rate="1e-10", nms_threshold="0.3")
    again = train(second, "--algorithm", "object-detection")
    assert again.code == 0, again.out[-3000:]
    for line in (
        "Start training from the model in the model channel.",
        "Found a model archive file. Extracting model.tar.gz",
        "Using model weights from file ",
    ):
        assert line in again.out, line
    before = mx.nd.load(str(root / "model" / "model_algo_1-0000.params"))
    after = mx.nd.load(str(second / "model" / "model_algo_1-0000.params"))
    weights = sorted(k for k in before if k.startswith("arg:"))
    assert len(weights) > 100 and weights == sorted(k for k in after if k.startswith("arg:"))
    for key in weights:
        assert np.allclose(before[key].asnumpy(), after[key].asnumpy(), atol=1e-6), key

    # Another network: each mismatch named with both values.
    shutil.rmtree(second / "model")
    (second / "model").mkdir()
    set_hyperparameters(second, num_classes="4", base_network="vgg-16")
    other = in_process(second, "--algorithm", "object-detection")
    assert other.code == 2, other.out[-3000:]
    assert (
        "base_network: the model in the model channel has 'resnet-50', this job has 'vgg-16'" in other.failure
    )
    assert "num_classes: the model in the model channel has 3, this job has 4" in other.failure


def test_an_augmented_manifest_of_bounding_boxes_in_pipe_mode(tmp_path, feeders):
    """Ground Truth's output: one manifest line per image, the image then its bounding-box object,
    streamed as one RecordIO record per attribute; a bad box is named by sample and attribute."""
    root = tmp_path / "ml"
    write_detection_tree(root, content="images", train_images=4, val_images=2, hyperparameters=HP)
    data = root / "input" / "data"
    manifests = {}
    for split in ("train", "validation"):
        lines = []
        for note in sorted((data / f"{split}_annotation").glob("*.json")):
            doc = json.loads(note.read_text())
            ref = f"s3://bucket/{split}/{doc.pop('file')}"
            lines.append(json.dumps({"source-ref": ref, "bounding-box": doc, "bounding-box-metadata": {}}))
        manifests[split] = tmp_path / f"{split}.manifest"
        manifests[split].write_text("\n".join(lines) + "\n")
        shutil.copytree(data / split, tmp_path / "s3" / "bucket" / split)
    shutil.rmtree(data)
    wrapped = {**PIPE, "RecordWrapperType": "RecordIO", "AttributeNames": ["source-ref", "bounding-box"]}
    set_channels(root, train=wrapped, validation=wrapped)
    set_hyperparameters(root, epochs="1")
    feed = ["--attributes", "source-ref,bounding-box", "--s3-root", str(tmp_path / "s3")]
    started = [
        feeders(root, split, 1, "--manifest", str(manifests[split]), *feed, env=cli_env())
        for split in ("train", "validation")
    ]
    run = train(root, "--algorithm", "object-detection", SAGEMAKER_CV_PIPE_TIMEOUT=60)
    assert run.code == 0, run.out[-3000:]
    for f in started:
        assert f.wait(timeout=30) == 0, f.stderr.read()
    assert run.out.count("validation mAP <score>=") == 1
    assert run.model_files == ["hyperparams.json", "model_algo_1-0000.params", "model_algo_1-symbol.json"]

    # A class_id beyond num_classes, named by stream, sample and attribute.
    lines = manifests["train"].read_text().splitlines()
    bad = json.loads(lines[1])
    bad["bounding-box"]["annotations"][0]["class_id"] = 7
    lines[1] = json.dumps(bad)
    manifests["train"].write_text("\n".join(lines) + "\n")
    shutil.rmtree(root / "model")
    (root / "model").mkdir()
    started = [
        feeders(root, split, 1, "--manifest", str(manifests[split]), *feed, env=cli_env())
        for split in ("train", "validation")
    ]
    failed = train(root, "--algorithm", "object-detection", SAGEMAKER_CV_PIPE_TIMEOUT=60)
    assert failed.code == 2, failed.out[-3000:]
    assert failed.failure.startswith(
        "ClientError: train_0 sample 1 attribute 'bounding-box' (attribute 2 of 2): annotations[0] class_id=7"
    ), failed.failure
