"""A channel with several .rec files (a large dataset, a ShardedByS3Key channel) is one dataset:
counted, validated, shuffled across its files and split across hosts as a whole."""

from __future__ import annotations

import re

import cv2
import mxnet as mx
import numpy as np
import pytest
from ml_tree import in_process, split_rec, train

from sagemaker_cv.algorithms.classification.data import record_iter
from sagemaker_cv.algorithms.classification.records import LabelRules, scan_recordio
from sagemaker_cv.inputs.recordio import find_shards

N = 24  # records, each with its own label, in three files of 8


def write_shards(channel, undecodable=()):
    """Three .rec files; record i has label i (so labels identify records)."""
    channel.mkdir(parents=True)
    for part in range(3):
        writer = mx.recordio.MXRecordIO(str(channel / f"part-{part}.rec"), "w")
        for i in range(part * 8, part * 8 + 8):
            _, png = cv2.imencode(".png", np.full((8, 8, 3), i, np.uint8))
            image = b"not an image" if i in undecodable else png.tobytes()
            writer.write(mx.recordio.pack(mx.recordio.IRHeader(0, float(i), i, 0), image))
        writer.close()


def labels_of(iterator, batches=None):
    iterator.reset()
    out = []
    for n, batch in enumerate(iterator):
        if batches is not None and n == batches:
            break
        out += batch.label[0].asnumpy().astype(int).tolist()
    return out


@pytest.mark.fast
def test_records_of_every_file_are_counted_shuffled_together_and_split_by_rank(tmp_path):
    write_shards(tmp_path / "train")
    rules = LabelRules(N, False, (3, 8, 8), None)
    shards = find_shards(tmp_path / "train", "train")
    prepared = scan_recordio(shards, "train", rules, tmp_path / "scratch")
    assert prepared.count == N and prepared.source == "train (3 .rec files)"
    assert prepared.files == tuple(s.path for s in shards)  # read in place: nothing copied

    in_order = record_iter(prepared, batch_size=8, rules=rules, train=False)
    assert labels_of(in_order) == list(range(N))

    shuffled = record_iter(prepared, batch_size=8, rules=rules, train=True, seed=3)
    epoch = labels_of(shuffled)
    assert sorted(epoch) == list(range(N))
    # Shuffled across files, not within each: the first batch mixes records of several files.
    assert len({label // 8 for label in epoch[:8]}) > 1, epoch

    parts = [
        labels_of(record_iter(prepared, batch_size=4, rules=rules, train=True, num_parts=2, part_index=p))
        for p in (0, 1)
    ]
    assert len(parts[0]) == len(parts[1]) == N // 2
    assert sorted(parts[0] + parts[1]) == list(range(N))


@pytest.mark.fast
def test_only_a_file_with_undecodable_images_is_copied(tmp_path):
    write_shards(tmp_path / "train", undecodable={9, 12})
    rules = LabelRules(N, False, (3, 8, 8), None)
    prepared = scan_recordio(find_shards(tmp_path / "train", "train"), "train", rules, tmp_path / "scratch")
    assert prepared.count == N - 2 and prepared.skipped_count == 2
    assert prepared.skipped == ["train/part-1.rec record 2 (id 9)", "train/part-1.rec record 5 (id 12)"]
    assert [p.name for p in prepared.files] == ["part-0.rec", "train-00001.rec", "part-2.rec"]
    expected = [i for i in range(N) if i not in (9, 12)]
    assert labels_of(record_iter(prepared, batch_size=2, rules=rules, train=False)) == expected


def test_a_channel_with_several_rec_files_trains_on_all_of_them(tree):
    root = tree(hyperparameters={"epochs": "1"})
    split_rec(root / "input/data/train/train.rec", ["part-0.rec", "part-1.rec", "more/part-2.rec"])
    run = in_process(root)
    assert run.code == 0, run.out[-3000:]
    assert "Validation passed: train: 72 samples, validation: 30 samples" in run.out
    run = train(root, SAGEMAKER_CV_LOG_INTERVAL=1)
    assert run.code == 0, run.out[-3000:]
    # 72 images in batches of 8: nine batches make the epoch.
    assert re.findall(r"Epoch\[0\] Batch \[(\d+)\]", run.out)[-1] == "9"


def test_a_damaged_file_among_several_is_named_with_record_and_offset(tree):
    root = tree()
    parts = split_rec(root / "input/data/train/train.rec", ["part-0.rec", "part-1.rec"])
    data = parts[1].read_bytes()
    parts[1].write_bytes(data[:5000] + b"\x00" * 64)
    run = in_process(root)
    assert run.code == 2, run.out[-3000:]
    reason = run.failure
    assert re.match(
        r"ClientError: train/part-1\.rec: record \d+ at byte offset \d+ is (not RecordIO: expected the "
        r"RecordIO magic number 0xced7230a, found 0x[0-9a-f]{8}|truncated: .*)",
        reason,
    ), reason
    assert "im2rec" in reason and "Traceback" not in reason and "dmlc" not in reason


@pytest.mark.cluster
def test_two_hosts_split_a_sharded_channel_by_rank(tmp_path):
    from test_distributed_training import Cluster

    c = Cluster(tmp_path, 2, hyperparameters={"epochs": "1"})  # 48 training images, batch 8
    for root in c.roots:
        split_rec(root / "input/data/train/train.rec", ["part-0.rec", "part-1.rec", "part-2.rec"])
    try:
        c.start()
        codes = c.wait(300)
    finally:
        c.stop()
    assert codes == {"algo-1": 0, "algo-2": 0}, c.tail("algo-1") + c.tail("algo-2")
    for rank, name in enumerate(c.names):
        # Each host reads its half of the three files: 24 of the 48 images per epoch.
        assert re.search(
            rf"Host {name} \(worker {rank} of 2\): Epoch\[0\] Throughput: [0-9.]+ samples/sec \(24 samples in",
            c.log(name),
        ), c.tail(name)
