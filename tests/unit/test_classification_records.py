"""Classification's record checks on tiny files: labels that are no numbers, headers that lie,
.lst files that repeat each other, non-regular files, and packing one image at a time."""

from __future__ import annotations

import os
import struct
import tracemalloc

import cv2
import mxnet as mx
import numpy as np
import pytest
from test_recordio import write_rec

from sagemaker_cv.algorithms.classification.data import lst_lines
from sagemaker_cv.algorithms.classification.records import LabelRules, check_size, pack_lst, scan_recordio
from sagemaker_cv.contract.errors import ClientError
from sagemaker_cv.inputs.lst import LstEntry
from sagemaker_cv.inputs.recordio import Shard, find_shards

RULES = LabelRules(3, False, (3, 8, 8), None)


def png(value=0, size=8):
    return cv2.imencode(".png", np.full((size, size, 3), value, np.uint8))[1].tobytes()


def write_records(path, payloads):
    return [Shard(write_rec(path, payloads), f"train/{path.name}")]


def test_labels_that_are_not_numbers_and_headers_that_lie_name_the_record(tmp_path):
    pack = mx.recordio.pack
    lying = struct.pack("IfQQ", 1000000, 0.0, 7, 0) + png()
    shards = write_records(
        tmp_path / "x.rec",
        [
            pack(mx.recordio.IRHeader(0, 1.0, 0, 0), png()),
            pack(mx.recordio.IRHeader(0, float("nan"), 1, 0), png()),
            pack(mx.recordio.IRHeader(0, float("inf"), 2, 0), png()),
            lying,
            b"abc",
        ],
    )
    with pytest.raises(ClientError) as info:
        scan_recordio(shards, "train", RULES, tmp_path / "scratch")
    assert info.value.problems == [
        "train/x.rec record 2 (id 1): label nan is not a class index in [0, 2] (num_classes=3)",
        "train/x.rec record 3 (id 2): label inf is not a class index in [0, 2] (num_classes=3)",
        f"train/x.rec record 4: header (id 7) claims 1000000 labels, more than the {len(png())} bytes "
        "after it hold; make the file with im2rec",
        "train/x.rec record 5: too short to hold an image record header; make the file with im2rec",
    ]


def test_the_shorter_sides_of_the_kept_images_are_known(tmp_path):
    """What a job without `resize` records for serving (archive.validation_side)."""
    pack = mx.recordio.pack

    def jpeg(height, width):
        return cv2.imencode(".jpg", np.full((height, width, 3), 90, np.uint8))[1].tobytes()

    payloads = [jpeg(12, 9), jpeg(10, 14), b"not an image", jpeg(11, 10)]
    records = [pack(mx.recordio.IRHeader(0, 1.0, i, 0), p) for i, p in enumerate(payloads)]
    prepared = scan_recordio(write_records(tmp_path / "x.rec", records), "train", RULES, tmp_path / "s")
    assert (prepared.count, prepared.shorter_sides) == (3, (9, 10))  # the undecodable one skipped


def test_a_resize_that_would_exhaust_memory_is_a_problem():
    rules = LabelRules(3, False, (3, 8, 8), 100000)
    assert check_size(np.zeros((32, 40, 3), np.uint8), rules) == (
        "image is 32x40; resize=100000 would make it 100000x125000 (more than 33554432 pixels); lower resize"
    )


def lst_channel(tmp_path, lists, images=("a.png", "b.png", "c.png")):
    (tmp_path / "train").mkdir()
    (tmp_path / "train_lst").mkdir()
    for name in images:
        (tmp_path / "train" / name).write_bytes(png())
    for name, text in lists.items():
        (tmp_path / "train_lst" / name).write_bytes(text)
    return find_shards(tmp_path / "train_lst", "train_lst", ".lst")


def pack(tmp_path, shards, rules=RULES):
    return pack_lst(
        lst_lines(shards, rules.label_width), "lst", tmp_path / "train", "train", rules, tmp_path / "s"
    )


def test_lst_with_a_byte_order_mark_and_windows_line_ends(tmp_path):
    shards = lst_channel(tmp_path, {"t.lst": "\ufeff0\t1\ta.png\r\n1\t2\tb.png\r\n".encode()})
    assert pack(tmp_path, shards).count == 2


def test_two_lst_files_that_repeat_each_other_are_refused_naming_both(tmp_path):
    text = b"0\t0\ta.png\n1\t1\tb.png\n"
    shards = lst_channel(tmp_path, {"new.lst": text, "old.lst": text})
    with pytest.raises(ClientError) as info:
        pack(tmp_path, shards)
    assert info.value.problems == [
        "train_lst/old.lst:1: image index 0 repeats train_lst/new.lst:1; indices must be unique across the "
        "channel's .lst files (is an old copy left beside the new one?)",
        "train_lst/old.lst:2: image index 1 repeats train_lst/new.lst:2; indices must be unique across the "
        "channel's .lst files (is an old copy left beside the new one?)",
    ]


def test_a_fifo_or_a_directory_listed_as_an_image_is_refused_without_blocking(tmp_path, no_hang):
    shards = lst_channel(tmp_path, {"t.lst": b"0\t0\ta.png\n1\t0\tfifo.png\n2\t1\tdir.png\n"})
    os.mkfifo(tmp_path / "train" / "fifo.png")
    (tmp_path / "train" / "dir.png").mkdir()
    with pytest.raises(ClientError) as info:
        pack(tmp_path, shards)
    assert info.value.problems == [
        "train_lst/t.lst:2: image 'fifo.png': is a FIFO (named pipe); File-mode input must be regular files",
        "train_lst/t.lst:3: image 'dir.png': is a directory; File-mode input must be regular files",
    ]


def test_a_fifo_as_the_lst_file_is_refused(tmp_path, no_hang):
    lst_channel(tmp_path, {})
    os.mkfifo(tmp_path / "train_lst" / "t.lst")
    with pytest.raises(ClientError, match=r"train_lst/t.lst: is a FIFO \(named pipe\)"):
        find_shards(tmp_path / "train_lst", "train_lst", ".lst")


def test_packing_memory_does_not_grow_with_the_number_of_images(tmp_path):
    """One 1 MB image listed 4 or 40 times: the peak of Python allocations stays the same."""
    (tmp_path / "train").mkdir()
    noise = np.random.default_rng(0).integers(0, 256, (600, 600, 3), dtype=np.uint8)
    (tmp_path / "train" / "a.png").write_bytes(cv2.imencode(".png", noise)[1].tobytes())

    def peak(count):
        entries = (LstEntry(i + 1, i, (float(i % 3),), "a.png", "t.lst") for i in range(count))
        tracemalloc.start()
        try:
            prepared = pack_lst(entries, "t.lst", tmp_path / "train", "train", RULES, tmp_path / f"s{count}")
            return tracemalloc.get_traced_memory()[1], prepared.count
        finally:
            tracemalloc.stop()

    (small, n_small), (large, n_large) = peak(4), peak(40)
    assert (n_small, n_large) == (4, 40)
    assert large < small * 1.2, (small, large)
