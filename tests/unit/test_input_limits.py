"""The pieces that keep bad inputs from crashing or blowing up, as plain functions: a user's JSON,
the channel walker, image headers, memory estimates, the label map's table, binary values in
messages. Tier: fast."""

from __future__ import annotations

import errno
import os
import struct
import zlib

import numpy as np
import pytest

from sagemaker_cv.algorithms.detection import limits as detection_limits
from sagemaker_cv.algorithms.segmentation import limits as segmentation_limits
from sagemaker_cv.algorithms.segmentation.labels import parse_label_map
from sagemaker_cv.contract import files
from sagemaker_cv.contract.errors import ClientError
from sagemaker_cv.inputs import manifest
from sagemaker_cv.inputs.images import cap_problem, read_header
from sagemaker_cv.training.devices import plan_devices
from sagemaker_cv.training.memory import GIB, HostMemory, fit, host_memory


def png_header(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + ihdr + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[" * 100000 + "]" * 100000, "a.json: not valid JSON (lists and objects nested too deeply)"),
        ("[" * 40 + "]" * 40, "a.json: lists and objects nested more than 32 levels deep"),
        ("9" * 5000, "a.json: not valid JSON (holds a number of more than 4300 digits)"),
        ('{"a": NaN}', "a.json: not valid JSON (NaN is not a JSON number)"),
        ('{"a": -Infinity}', "a.json: not valid JSON (-Infinity is not a JSON number)"),
        ('{"a": ', "a.json: not valid JSON (Expecting value: line 1 column 7 (char 6))"),
    ],
)
def test_a_users_json_is_refused_in_words(text, problem):
    with pytest.raises(ClientError) as info:
        files.decode_json(text, "a.json")
    assert info.value.problems == [problem]


def test_large_documents_may_nest_as_deep_as_the_parser_allows():
    assert files.decode_json("[" * 40 + "]" * 40, "a.json", depth=None) is not None


def test_the_channel_walker_names_what_cannot_be_read(tmp_path):
    channel = tmp_path / "train"
    (channel / "sub").mkdir(parents=True)
    (channel / "a.jpg").write_bytes(b"a")
    (channel / "sub" / "b.jpg").write_bytes(b"b")
    (tmp_path / "outside.jpg").write_bytes(b"o")
    (channel / "out.jpg").symlink_to(tmp_path / "outside.jpg")
    (channel / "in.jpg").symlink_to("a.jpg")  # inside: fine
    (channel / "gone.jpg").symlink_to("nowhere.jpg")
    (channel / "loop.jpg").symlink_to("loop2.jpg")
    (channel / "loop2.jpg").symlink_to("loop.jpg")
    (channel / "linked").symlink_to(tmp_path)  # a directory outside
    os.mkfifo(channel / "pipe.jpg")
    (channel / "notes.txt").write_text("x")
    listing = files.list_channel(channel, "train", lambda p: p.suffix != ".txt")
    found, problems = listing.files, listing.problems
    assert [p.relative_to(channel).as_posix() for p in found] == ["a.jpg", "in.jpg", "sub/b.jpg"]
    # What was refused is kept, so that a partner file is not reported "missing" after it.
    assert sorted(listing.refused) == ["gone.jpg", "loop.jpg", "loop2.jpg", "out.jpg", "pipe.jpg"]
    assert listing.unlisted == ("linked",) and listing.refused_stems >= {"pipe", "out"}
    assert listing.withholds("pipe") and listing.withholds("linked/x") and not listing.withholds("a")
    assert sorted(problems) == sorted(
        [
            f"train/out.jpg: is a symlink to {tmp_path / 'outside.jpg'}, outside the train channel; copy the "
            "file into the channel",
            f"train/linked: is a symlink to {tmp_path}, outside the train channel; copy the file into the channel",
            "train/gone.jpg: is a symlink to nowhere.jpg which does not exist",
            "train/loop.jpg: is a symlink to loop2.jpg (Too many levels of symbolic links)",
            "train/loop2.jpg: is a symlink to loop.jpg (Too many levels of symbolic links)",
            "train/pipe.jpg: is a FIFO (named pipe); File-mode input must be regular files",
        ]
    )


def test_a_directory_that_cannot_be_listed_is_named(tmp_path, monkeypatch):
    channel = tmp_path / "train"
    channel.mkdir()
    real_walk = os.walk

    def walk(top, onerror=None, **kwargs):  # as os.walk reports an unreadable directory
        onerror(PermissionError(errno.EACCES, "Permission denied", str(channel / "private")))
        yield from real_walk(top, onerror=onerror, **kwargs)

    monkeypatch.setattr(files.os, "walk", walk)
    assert files.channel_files(channel, "train") == (
        [],
        ["train/private: cannot be listed (Permission denied)"],
    )
    listing = files.list_channel(channel, "train")
    assert listing.unlisted == ("private",) and listing.withholds("private/deeper/a")
    assert not listing.withholds("privately") and not listing.withholds("a")


def test_image_sizes_come_from_the_header_alone():
    header = read_header(png_header(10000, 8000))  # no pixel data at all
    assert (header.width, header.height, header.pixels) == (10000, 8000, 80_000_000)
    assert cap_problem(header, 1 << 25, "downscale it") == (
        "image is 10000x8000 pixels (width x height), more than the 33,554,432 pixels an image may have "
        "here; downscale it"
    )
    beyond = read_header(png_header(20000, 20000))  # Pillow refuses it, its message counts the pixels
    assert beyond.pixels == 400_000_000 and beyond.describe() == "400,000,000 pixels"
    assert cap_problem(read_header(png_header(64, 48)), 1 << 25, "x") is None
    assert read_header(b"not an image") is None and read_header(b"\x89PNG\r\n\x1a\n\x00") is None
    # The header alone, no chunk after it: Pillow will not open it, the size is still read.
    assert read_header(png_header(30000, 20000)[:33]).pixels == 600_000_000


def test_memory_estimates_refuse_only_what_cannot_fit():
    host = HostMemory(total=16 * GIB, available=8 * GIB)
    assert fit(4 * GIB, "x", "lower y", host) == ([], [])
    problems, warnings = fit(12 * GIB, "x", "lower y", host)
    assert problems == [] and warnings == [
        "x needs about 12.0 GB of memory for one training step; 8.0 GB is available now: the job may run out of memory"
    ]
    problems, _ = fit(20 * GIB, "x", "lower y", host)
    assert problems == [
        "x needs at least about 20.0 GB of memory for one training step, more than this host's 16.0 GB; lower y, "
        "or use an instance with more memory"
    ]
    # The measured figures: SSD VGG-16, 32 images of 512 px: about 22 GB.
    assert detection_limits.training_bytes("vgg-16", 512, 32) / GIB == pytest.approx(21.6, abs=0.1)
    assert segmentation_limits.training_bytes("fcn", 477, 4) == segmentation_limits.training_bytes(
        "fcn", 480, 4
    )


def test_limits_apply_to_cpu_hosts_and_the_cgroup_limit(tmp_path):
    class HP:
        base_network, image_shape, mini_batch_size = "resnet-50", 2048, 1000

    small = HostMemory(total=8 * GIB, available=8 * GIB)
    assert detection_limits.problems(HP, plan_devices(0), small)[0]
    assert detection_limits.problems(HP, plan_devices(2), small) == ([], [])  # GPUs: not estimated
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       16000000 kB\nMemAvailable:    9000000 kB\n")
    limit = tmp_path / "memory.max"
    limit.write_text("4294967296\n")
    assert host_memory(meminfo, (limit,)) == HostMemory(4 * GIB, 4 * GIB)
    limit.write_text("max\n")
    assert host_memory(meminfo, (limit,)) == HostMemory(16_000_000 * 1024, 9_000_000 * 1024)


def test_syncbn_is_refused_on_cpu_contexts_only():
    class HP:
        algorithm, crop_size, mini_batch_size, syncbn = "fcn", 64, 4, True

    roomy = HostMemory(total=64 * GIB, available=64 * GIB)
    assert segmentation_limits.problems(HP, plan_devices(0, cpu_devices=3), roomy) == (
        [
            "syncbn=True on 3 CPU contexts (SAGEMAKER_CV_CPU_DEVICES=3) can deadlock in MXNet: SyncBatchNorm "
            "waits for every device while CPU contexts share temporary memory and threads; it synchronises "
            "GPUs only. Set syncbn=False or SAGEMAKER_CV_CPU_DEVICES=1"
        ],
        [],
    )
    assert segmentation_limits.problems(HP, plan_devices(0), roomy) == ([], [])  # one context: BatchNorm
    assert segmentation_limits.problems(HP, plan_devices(2), roomy) == ([], [])  # GPUs
    HP.syncbn = False
    assert segmentation_limits.problems(HP, plan_devices(0, cpu_devices=2), roomy) == ([], [])


def test_a_map_label_maps_32_bit_pixels_without_a_table_of_their_size():
    label_map = parse_label_map({"map": {"0": 7, "1": 0}}, 2)
    mask = np.full((3, 4), 7, dtype=np.int64)
    mask[0, 1], mask[2, 3], mask[1, 1] = 2_000_000_000, -5, 255
    classes, bad = label_map.encode(mask, 2)
    assert (bad.value, bad.row, bad.col, bad.count) == (2_000_000_000, 0, 1, 2)
    assert classes[1, 1] == 255 and classes[1, 0] == 0


def test_label_map_numbers_of_hundreds_of_digits_are_named():
    from sagemaker_cv.algorithms.segmentation.labels import LabelMapError

    with pytest.raises(
        LabelMapError, match=r"scale=3333333333333333333333333333333333333333: expected an integer of"
    ):
        parse_label_map({"scale": int("3" * 400)}, 3)


def test_binary_values_are_described_not_quoted():
    jpeg = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01" + bytes(range(256)) * 2
    with pytest.raises(ClientError) as info:
        manifest.check_png(jpeg, "train_0 sample 3 attribute 'label-ref' (attribute 2 of 2)")
    assert info.value.problems == [
        "train_0 sample 3 attribute 'label-ref' (attribute 2 of 2): holds a JPEG image (524 bytes, starting "
        "ff d8 ff e0 00 10 4a 46), not a PNG image; label masks must be PNG files"
    ]
    with pytest.raises(ClientError, match=r"holds 's3://bucket/a\.png', not a PNG image"):
        manifest.check_png(b"s3://bucket/a.png", "x")
