"""Image classification in Pipe mode through the real command line: FIFOs fed epoch after epoch by
writer processes (tools.pipefeed, SageMaker's side), RecordIO with split records and augmented
manifests."""

from __future__ import annotations

import json
from pathlib import Path

import mxnet as mx
import numpy as np
import pytest
from ml_tree import cli_env, train

from sagemaker_cv.inputs.recordio import MAGIC


def set_channels(root: Path, **channels) -> None:
    (root / "input" / "config" / "inputdataconfig.json").write_text(json.dumps(channels))


def with_magic_ids(rec: Path, target: Path) -> Path:
    """The same records with the RecordIO magic as their id: on the wire every record is split
    (cflag 1 and 3), as MXNet writes such payloads."""
    reader = mx.recordio.MXRecordIO(str(rec), "r")
    writer = mx.recordio.MXRecordIO(str(target), "w")
    while (item := reader.read()) is not None:
        header, image = mx.recordio.unpack(item)
        writer.write(mx.recordio.pack(header._replace(id=MAGIC), image))
    writer.close()
    return target


def pipe_tree(tree, tmp_path, **kwargs) -> tuple[Path, dict[str, Path]]:
    """A tree whose .rec files left the channel directories: they reach the job through FIFOs."""
    root = tree(**kwargs)
    recs = {}
    for split in ("train", "validation"):
        channel = root / "input" / "data" / split
        rec = next(channel.glob("*.rec"))
        recs[split] = with_magic_ids(rec, tmp_path / f"{split}.rec")
        rec.unlink()
        channel.rmdir()
    return root, recs


def evaluate(model_dir: Path, epoch: int, rec: Path, crop: int) -> float:
    """Accuracy of the saved model on a .rec, center-cropped as validation reads it."""
    sym, args, aux = mx.model.load_checkpoint(str(model_dir / "image-classification"), epoch)
    reader = mx.recordio.MXRecordIO(str(rec), "r")
    images, labels = [], []
    while (item := reader.read()) is not None:
        header, img = mx.recordio.unpack_img(item, iscolor=1)
        y, x = (img.shape[0] - crop) // 2, (img.shape[1] - crop) // 2
        images.append(img[y : y + crop, x : x + crop, ::-1].transpose(2, 0, 1))
        labels.append(int(header.label))
    module = mx.mod.Module(sym, data_names=["data"], label_names=None, context=mx.cpu())
    module.bind(data_shapes=[("data", (len(images), 3, crop, crop))], for_training=False)
    module.set_params(args, aux)
    module.forward(mx.io.DataBatch([mx.nd.array(np.stack(images).astype(np.float32))]), is_train=False)
    return float((module.get_outputs()[0].asnumpy().argmax(axis=1) == np.array(labels)).mean())


def test_recordio_through_fifos_epoch_after_epoch(tree, tmp_path, feeders):
    root, recs = pipe_tree(tree, tmp_path, per_class=20, val_per_class=7, hyperparameters={"epochs": "3"})
    pipe = {"ContentType": "application/x-recordio", "TrainingInputMode": "Pipe", "RecordWrapperType": "None"}
    set_channels(root, train=pipe, validation=pipe)
    started = [feeders(root, split, 3, recs[split], env=cli_env()) for split in ("train", "validation")]
    run = train(root, SAGEMAKER_CV_PIPE_TIMEOUT=60)
    assert run.code == 0, run.out[-3000:]
    for f in started:
        assert f.wait(timeout=30) == 0, f.stderr.read()
    for n in range(3):
        assert f"Reading {root}/input/data/train_{n} (Pipe mode)" in run.out
        assert f"Reading {root}/input/data/validation_{n} (Pipe mode)" in run.out
    # 60 samples in batches of 8: 8 batches (the last padded), as File mode counts them.
    assert "Epoch[2] Batch [8]" in run.out and "Epoch[2] Batch [10]" not in run.out
    # The streamed validation counted every sample once: the saved best model scores exactly the
    # logged best accuracy on the validation file.
    accuracies = run.values("Validation-accuracy")
    best = max(accuracies)
    saved = [f for f in run.model_files if f.endswith(".params")]
    assert saved == [f"image-classification-{accuracies.index(best) + 1:04d}.params"]
    assert (
        abs(evaluate(root / "model", accuracies.index(best) + 1, recs["validation"], crop=24) - best) < 1e-6
    )


def manifest(tmp_path: Path, root: Path, split: str, label=lambda cls: str(cls)) -> Path:
    """Ground Truth's output for the images of an .lst tree: {"source-ref": s3://..., "class": ...}."""
    lines = []
    for line in (root / "input" / "data" / f"{split}_lst" / f"{split}.lst").read_text().splitlines():
        _, cls, rel = line.split("\t")
        lines.append(
            json.dumps(
                {
                    "source-ref": f"s3://bucket/{split}/{rel}",
                    "class": label(int(float(cls))),
                    "class-metadata": {"job-name": "x"},
                }
            )
        )
    path = tmp_path / f"{split}.manifest"
    path.write_text("\n".join(lines) + "\n")
    return path


def images_to_s3(root: Path, tmp_path: Path) -> Path:
    """The training images leave the tree for a local stand-in of S3 (s3://bucket/train/...)."""
    s3 = tmp_path / "s3"
    (s3 / "bucket").mkdir(parents=True)
    (root / "input" / "data" / "train").rename(s3 / "bucket" / "train")
    return s3


MANIFEST_CHANNEL = {
    "ContentType": "application/x-recordio",
    "TrainingInputMode": "Pipe",
    "RecordWrapperType": "RecordIO",
    "AttributeNames": ["source-ref", "class"],
}


def manifest_job(tree, tmp_path, feeders, *, per_class: int, epochs: int, label, **channels):
    """An .lst tree whose training images moved to a stand-in for S3 and reach the job as an
    augmented manifest through a feeder; returns the tree and the feeder."""
    root = tree(
        content="lst",
        per_class=per_class,
        val_per_class=max(2, per_class // 3),
        image_size=32,
        hyperparameters={"epochs": str(epochs), "resize": "32", "num_layers": "20"},
    )
    s3 = images_to_s3(root, tmp_path)
    path = manifest(tmp_path, root, "train", label=label)
    set_channels(root, **channels)
    args = ("--manifest", path, "--attributes", "source-ref,class", "--s3-root", s3)
    return root, feeders(root, "train", epochs, *args, env=cli_env())


def test_augmented_manifest_in_pipe_mode_with_file_mode_validation(tree, tmp_path, feeders):
    # Ground Truth writes class ids; label-format=class-id says so (a single id: multi_label=0).
    root, feeder = manifest_job(
        tree,
        tmp_path,
        feeders,
        per_class=24,
        epochs=2,
        label=lambda cls: cls,
        train={**MANIFEST_CHANNEL, "ContentType": "application/x-recordio; label-format=class-id"},
        validation={"ContentType": "application/x-image", "TrainingInputMode": "File"},
        validation_lst={"ContentType": "application/x-image", "TrainingInputMode": "File"},
    )
    run = train(root, SAGEMAKER_CV_PIPE_TIMEOUT=60)
    assert run.code == 0, run.out[-3000:]
    assert feeder.wait(timeout=30) == 0
    assert "Creating record files for validation.lst" in run.out
    assert f"Reading {root}/input/data/train_1" in run.out
    assert len(run.values("Validation-accuracy")) == 2
    assert any(f.endswith(".params") for f in run.model_files)


@pytest.mark.fast
def test_a_bad_manifest_label_names_sample_and_attribute(tree, tmp_path, feeders):
    root, feeder = manifest_job(
        tree,
        tmp_path,
        feeders,
        per_class=8,
        epochs=1,
        label=lambda c: "[7]" if c == 2 else str(c),
        train=MANIFEST_CHANNEL,
    )
    run = train(root, SAGEMAKER_CV_PIPE_TIMEOUT=30)
    feeder.wait(timeout=30)
    assert run.code == 2, run.out[-3000:]
    assert run.failure.startswith(
        "ClientError: train_0 sample 16 attribute 'class' (attribute 2 of 2): label '[7]': expected one class index, "
        "an integer in [0, 2] (num_classes=3)"
    )
