"""Bad input always ends in a ClientError that names the file, the line and what would be valid;
undecodable images are skipped, counted and reported.

Tier: fast for the refusals (`train` run in this process: it ends before training), slow for the
two jobs that train past skipped images."""

from __future__ import annotations

import json

import mxnet as mx
import pytest
from ml_tree import in_process, set_hyperparameters, train


def rewrite_lst(root, split, edit):
    path = root / "input" / "data" / f"{split}_lst" / f"{split}.lst"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(edit(lines)) + "\n")
    return path


def refused(root, command="train"):
    return in_process(root, command=command)


def expect_client_error(run, *fragments):
    assert run.code == 2, run.out[-3000:]
    assert run.failure.startswith("ClientError: ")
    for fragment in fragments:
        assert fragment in run.failure[:1024], (fragment, run.failure)
    assert "Customer Error: " in run.out
    assert run.model_files == []


@pytest.mark.fast
def test_label_out_of_range_in_lst(tree):
    root = tree(content="lst")
    rewrite_lst(root, "train", lambda lines: [lines[0].replace("\t0\t", "\t7\t", 1), *lines[1:]])
    expect_client_error(
        refused(root),
        "train_lst/train.lst:1: label 7 is not a class index in [0, 2] (num_classes=3)",
    )


@pytest.mark.fast
def test_wrong_multi_hot_width(tree):
    root = tree(content="lst", multi_label=True)
    set_hyperparameters(root, num_classes=4)
    expect_client_error(
        refused(root),
        "train_lst/train.lst:1: 3 label column(s), expected 4 (one 0/1 column per class for multi_label=1)",
    )


@pytest.mark.fast
def test_path_outside_the_channel(tree):
    root = tree(content="lst")
    rewrite_lst(root, "validation", lambda lines: [*lines[:-1], "999\t0\t../train_lst/train.lst"])
    expect_client_error(
        refused(root), "validation_lst/validation.lst:30: path '../train_lst/train.lst' leaves the channel"
    )


@pytest.mark.fast
def test_missing_image(tree):
    root = tree(content="lst")
    rewrite_lst(root, "train", lambda lines: [*lines, "999\t1\tnowhere/gone.png"])
    expect_client_error(
        refused(root), "train_lst/train.lst:73: image 'nowhere/gone.png' not found in the train channel"
    )


@pytest.mark.fast
def test_fewer_images_than_the_batch(tree):
    root = tree(per_class=2)
    set_hyperparameters(root, mini_batch_size=16)
    expect_client_error(
        refused(root), "train/train.rec: 6 usable training image(s), fewer than mini_batch_size=16"
    )


@pytest.mark.fast
def test_images_smaller_than_image_shape(tree):
    root = tree()
    set_hyperparameters(root, image_shape="3,64,64")
    expect_client_error(
        refused(root),
        "train/train.rec record 1 (id 0): image is 32x32 (height x width), smaller than image_shape 64x64",
    )


@pytest.mark.fast
def test_recordio_label_out_of_range_names_the_record(tree):
    root = tree()
    set_hyperparameters(root, num_classes=2)
    run = refused(root)
    expect_client_error(
        run, "train/train.rec record 49 (id 48): label 2 is not a class index in [0, 1] (num_classes=2)"
    )
    assert "more problem(s) of the same kind" in run.failure


def test_undecodable_images_are_skipped_counted_and_reported(tree):
    root = tree(content="lst", hyperparameters={"epochs": "2"})
    images = sorted((root / "input" / "data" / "train").rglob("*.png"))
    images[0].write_bytes(b"not an image")
    images[1].write_bytes(b"")
    run = train(root)
    assert run.code == 0, run.out[-3000:]
    assert run.failure is None
    notes = [
        line
        for line in run.out.splitlines()
        if "Skipped 2 undecodable image(s) in train_lst/train.lst" in line
    ]
    assert len(notes) == 3  # once when reading, then at the end of each epoch
    lst = (root / "input" / "data" / "train_lst" / "train.lst").read_text().splitlines()
    named = []
    for image in images[:2]:
        rel = image.relative_to(root / "input" / "data" / "train").as_posix()
        line = next(i for i, text in enumerate(lst, start=1) if text.endswith("\t" + rel))
        named.append(f"train_lst/train.lst:{line} ({rel})")
    assert notes[0].endswith(": " + ", ".join(named))


@pytest.mark.fast
def test_no_decodable_image_at_all(tree):
    root = tree(content="lst")
    for image in (root / "input" / "data" / "validation").rglob("*.png"):
        image.write_bytes(b"junk")
    expect_client_error(
        refused(root), "validation_lst/validation.lst: none of its 30 image(s) could be decoded"
    )


@pytest.mark.fast
def test_broken_recordio_file(tree):
    root = tree()
    rec = next((root / "input" / "data" / "train").glob("*.rec"))
    rec.write_bytes(rec.read_bytes()[:1000] + b"\x00" * 64)
    run = refused(root)
    assert run.code == 2, run.out[-2000:]
    assert run.failure.startswith("ClientError: train/train.rec")


@pytest.mark.fast
def test_channel_problems_are_reported_together(tree):
    root = tree()
    config = root / "input" / "config" / "inputdataconfig.json"
    channels = json.loads(config.read_text())
    channels["extra"] = {"TrainingInputMode": "File"}
    channels["validation"]["RecordWrapperType"] = "RecordIO"
    channels["train"]["ContentType"] = "text/csv"
    config.write_text(json.dumps(channels))
    expect_client_error(
        refused(root, command="validate"),
        "channel 'extra': not used by image classification",
        "channel 'validation' RecordWrapperType=RecordIO (an augmented manifest) in File mode: SageMaker "
        "streams augmented manifests in Pipe mode only",
        "channel 'train' ContentType='text/csv'",
    )


@pytest.mark.fast
def test_lst_without_resize_and_missing_lst_channel(tree):
    root = tree(content="lst")
    set_hyperparameters(root, resize=None)
    config = root / "input" / "config" / "inputdataconfig.json"
    channels = json.loads(config.read_text())
    del channels["validation_lst"]
    config.write_text(json.dumps(channels))
    # Hyperparameter problems are found first; channel problems after they are fixed.
    expect_client_error(refused(root), "resize: required with image content types")
    set_hyperparameters(root, resize=32)
    expect_client_error(refused(root), "channel 'validation_lst' is missing")


def test_multi_label_recordio_from_im2rec_pack_label(tree):
    root = tree(multi_label=True, hyperparameters={"epochs": "1"})
    reader = mx.recordio.MXRecordIO(str(next((root / "input/data/train").glob("*.rec"))), "r")
    header, _ = mx.recordio.unpack(reader.read())
    assert header.flag == 3  # im2rec --pack-label wrote the multi-hot vector
    run = train(root)
    assert run.code == 0, run.out[-3000:]


@pytest.mark.fast
@pytest.mark.parametrize("command", ["validate", "train"])
def test_a_bad_seed_fails_validate_as_it_fails_train(tree, command):
    root = tree(content="lst")
    run = in_process(root, command=command, SAGEMAKER_CV_SEED="-3")
    expect_client_error(run, "SAGEMAKER_CV_SEED='-3': expected an integer in [0, 2147483647]")
