"""Semantic segmentation in Pipe mode through the real command line: an augmented manifest of image
and PNG mask references streamed through FIFOs epoch after epoch by writer processes
(tools.pipefeed, SageMaker's side), every record split on the wire; the label_map channel in File
mode beside it."""

from __future__ import annotations

import re
import struct

from ml_tree import cli_env, in_process, train

from sagemaker_cv.inputs.recordio import MAGIC_BYTES, frame
from sagemaker_cv.tools.segmentation_demo import ATTRIBUTES, move_to_manifests, write_segmentation_tree

HP = {
    "epochs": 2,
    "crop_size": 32,
    "base_size": 40,
    "mini_batch_size": 4,
    "validation_mini_batch_size": 1,
    "num_training_samples": 8,
}
#: the RecordIO magic at each of the four alignments, twice: wherever these bytes land in a
#: payload, two copies are 4-byte aligned and the record is sent in three parts (cflag 1, 2, 3)
MAGICS = 2 * (MAGIC_BYTES + b"\0" + MAGIC_BYTES + b"\0\0" + MAGIC_BYTES + b"\0\0\0" + MAGIC_BYTES)


def test_an_augmented_manifest_of_images_and_masks_through_fifos(tmp_path, feeders):
    root, s3 = tmp_path / "ml", tmp_path / "s3"
    write_segmentation_tree(root, train=8, validation=3, label_map="map", hyperparameters=HP)
    manifests = move_to_manifests(root, s3)
    for path in (s3 / "bucket").rglob("*.*"):  # decoders ignore bytes after the image's end
        path.write_bytes(path.read_bytes() + MAGICS)
    data = (s3 / "bucket" / "train_annotation" / "img_0000.png").read_bytes()
    assert struct.unpack_from("<I", frame(data), 4)[0] >> 29 == 1  # split on the wire

    # Without annotation channels, the job validates: the masks come in the stream.
    checked = in_process(root, "--algorithm", "semantic-segmentation")
    assert checked.code == 0, checked.out[-3000:]
    assert "Validation passed: the data streams in Pipe mode and is checked as it arrives" in checked.out

    feed = ["--attributes", ",".join(ATTRIBUTES), "--s3-root", str(s3)]
    started = [
        feeders(root, split, 2, "--manifest", manifests[split], *feed, env=cli_env())
        for split in ("train", "validation")
    ]
    run = train(root, "--algorithm", "semantic-segmentation", SAGEMAKER_CV_PIPE_TIMEOUT=60)
    assert run.code == 0, run.out[-3000:]
    for f in started:
        assert f.wait(timeout=30) == 0, f.stderr.read()
    data = root / "input" / "data"
    for split in ("train", "validation"):
        assert f"Reading {split} in Pipe mode from {data / split}_0, {data / split}_1, ..." in run.out
        for n in range(2):
            assert f"Reading {data / split}_{n} (Pipe mode)" in run.out
    assert re.search(r"#label_map train :\{'map': \{'0': 7, '1': 0, '2': 101\}\}\n", run.out)
    # 8 samples in batches of 4: 2 iterations per epoch, as File mode counts them.
    assert "LRScheduler setup: iters per epoch: 2, num_epochs 2" in run.out
    assert len(re.findall(r"validation mIOU: [0-9.e-]+ \.\n", run.out)) == 2
    assert len(re.findall(r"validation pixel_accuracy: [0-9.e-]+ \.\n", run.out)) == 2
    assert run.model_files == [
        "hyperparams.json",
        "model_algo-1",
        "model_algo-1-0000.params",
        "model_algo-1-symbol.json",
    ]
