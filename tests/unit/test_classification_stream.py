"""Image classification's Pipe-mode reader on real FIFOs and MXNet's ImageRecordIter, without a
network: what each worker sees per epoch, and how streamed data errors are reported."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import mxnet as mx
import numpy as np
import pytest

from sagemaker_cv.algorithms.classification import data
from sagemaker_cv.algorithms.classification.records import LabelRules
from sagemaker_cv.algorithms.classification.stream import ClassificationStream, StreamSpec
from sagemaker_cv.contract.errors import ClientError
from sagemaker_cv.contract.paths import MLPaths
from sagemaker_cv.inputs.manifest import ManifestLayout
from sagemaker_cv.inputs.pipe import PipeSettings
from sagemaker_cv.inputs.recordio import MAGIC

N = 30
RULES = LabelRules(num_classes=N, multi_label=False, image_shape=(3, 8, 8), resize=None)


def image(i: int) -> bytes:
    picture = np.full((10, 10, 3), (i * 8) % 256, dtype=np.uint8)
    return cv2.imencode(".png", picture)[1].tobytes()


def rec_file(tmp_path: Path, labels, broken=()) -> Path:
    """One record per label, each its own class so batches tell which samples they hold. The
    record id is the RecordIO magic: every record is split (cflag 1 and 3) on the wire."""
    path = tmp_path / "train.rec"
    writer = mx.recordio.MXRecordIO(str(path), "w")
    for i, label in enumerate(labels):
        header = mx.recordio.IRHeader(0, float(label), MAGIC, 0)
        writer.write(mx.recordio.pack(header, b"not an image" if i in broken else image(i)))
    writer.close()
    return path


def stream(
    root: Path,
    scratch: Path,
    *,
    workers=1,
    rank=0,
    distribution="FullyReplicated",
    layout=None,
    fmt="multi-hot",
    rules=RULES,
    samples=N,
):
    def make_iter(prepared, *, train, seed):
        return data.record_iter(
            prepared, batch_size=4, rules=rules, train=train, seed=seed, shuffle=False, threads=1
        )

    return ClassificationStream(
        StreamSpec("train", distribution, layout, fmt),
        MLPaths(root),
        rules,
        batch_size=4,
        scratch=scratch,
        settings=PipeSettings(timeout=20, log_every=5),
        make_iter=make_iter,
        workers=workers,
        rank=rank,
        num_training_samples=samples,
    )


def read(epoch) -> tuple[int, list]:
    """(batches, labels of the real samples). Read as they come: MXNet's iterator reuses a
    batch's buffers for later batches."""
    count, labels = 0, []
    for batch, real in epoch:
        count += 1
        labels += batch.label[0].asnumpy().astype(int).tolist()[:real]
    return count, labels


def test_two_workers_see_every_sample_once_per_epoch_with_equal_batch_counts(tmp_path, feeders):
    rec = rec_file(tmp_path, range(N))
    roots = [tmp_path / "algo-1", tmp_path / "algo-2"]
    procs = [feeders(root, "train", 2, rec) for root in roots]
    streams = [stream(root, tmp_path / f"s{rank}", workers=2, rank=rank) for rank, root in enumerate(roots)]
    for epoch in range(2):
        (count0, seen0), (count1, seen1) = [read(s.epoch(seed=epoch)) for s in streams]
        # 30 samples: 15 per worker, 4 batches each (the last padded), the same count on both.
        assert count0 == count1 == 4
        assert sorted(seen0) == list(range(0, N, 2)) and sorted(seen1) == list(range(1, N, 2))
    for p in procs:
        assert p.wait(timeout=20) == 0


def test_a_worker_with_fewer_samples_repeats_to_the_common_count(tmp_path, feeders):
    rec = rec_file(tmp_path, range(17))  # ranks hold 9 and 8: 3 and 2 batches of 4
    roots = [tmp_path / "algo-1", tmp_path / "algo-2"]
    procs = [feeders(root, "train", 1, rec) for root in roots]
    counts = [
        read(stream(r, tmp_path / f"s{i}", workers=2, rank=i).epoch(seed=0))[0] for i, r in enumerate(roots)
    ]
    assert counts == [3, 3]
    for p in procs:
        p.wait(timeout=20)


def test_sharded_pipes_run_the_count_of_num_training_samples(tmp_path, feeders):
    rec = rec_file(tmp_path, range(N))
    # 2 hosts, num_training_samples 40: 5 batches of 4 per host, whatever each host's stream holds.
    root = tmp_path / "ml"
    proc = feeders(root, "train", 2, rec)
    s = stream(root, tmp_path / "s", workers=2, distribution="ShardedByS3Key", samples=40)
    count, seen = read(s.epoch(seed=0))
    assert count == 5 and len(set(seen)) == len(seen) == 20  # read whole, stopped early: the rest unread
    s.num_training_samples = 80  # 10 batches: the 30 samples, then the last chunk again
    assert read(s.epoch(seed=1))[0] == 10
    proc.wait(timeout=20)


def test_undecodable_images_are_skipped_and_named_the_rest_trains(tmp_path, feeders):
    rec = rec_file(tmp_path, range(N), broken={5, 22})
    root = tmp_path / "ml"
    proc = feeders(root, "train", 1, rec)
    s = stream(root, tmp_path / "s")
    _, seen = read(s.epoch(seed=0))
    assert sorted(seen) == sorted(set(range(N)) - {5, 22})
    assert sorted(s.skipped) == ["train_0 record 23", "train_0 record 6"]
    proc.wait(timeout=20)


def test_a_bad_label_names_the_record(tmp_path, feeders):
    rec = rec_file(tmp_path, [*range(10), 99])
    root = tmp_path / "ml"
    proc = feeders(root, "train", 1, rec)
    with pytest.raises(
        ClientError, match=r"train_0 record 11 \(id 3470205706\): label 99 is not a class index in \[0, 29\]"
    ):
        list(stream(root, tmp_path / "s").epoch(seed=0))
    proc.wait(timeout=20)


def test_an_augmented_manifest_streams_image_and_label(tmp_path, feeders):
    lines = []
    for i in range(12):
        lines.append(json.dumps({"source-ref": f"s3://bucket/{i}.png", "class": str([i % 3, 3])}))
    (tmp_path / "bucket").mkdir()
    for i in range(12):
        (tmp_path / "bucket" / f"{i}.png").write_bytes(image(i))
    manifest = tmp_path / "train.manifest"
    manifest.write_text("\n".join(lines) + "\n")
    root = tmp_path / "ml"
    proc = feeders(
        root, "train", 1, "--manifest", manifest, "--attributes", "source-ref,class", "--s3-root", tmp_path
    )
    rules = LabelRules(num_classes=4, multi_label=True, image_shape=(3, 8, 8), resize=None)
    s = stream(
        root,
        tmp_path / "s",
        layout=ManifestLayout(("source-ref", "class")),
        fmt="class-id",
        rules=rules,
        samples=12,
    )
    vectors = sorted(
        tuple(v) for b, real in s.epoch(seed=0) for v in b.label[0].asnumpy().astype(int).tolist()[:real]
    )
    expected = sorted(tuple(1 if k in (i % 3, 3) else 0 for k in range(4)) for i in range(12))
    assert vectors == expected
    proc.wait(timeout=20)
