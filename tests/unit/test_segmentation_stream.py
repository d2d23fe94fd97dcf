"""Semantic segmentation's Pipe-mode reader: each streamed sample's checks (every defect named by
FIFO, sample, attribute and value), batches the same as File mode's, and two workers sharing a
FullyReplicated stream over real FIFOs."""

from __future__ import annotations

import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageFile

from sagemaker_cv.algorithms.segmentation.dataset import Split
from sagemaker_cv.algorithms.segmentation.labels import DEFAULT, parse_label_map
from sagemaker_cv.algorithms.segmentation.loader import SegmentationSamples, transform
from sagemaker_cv.algorithms.segmentation.stream import (
    DEFAULT_ATTRIBUTES,
    SegmentationStream,
    StreamSpec,
    pack,
)
from sagemaker_cv.contract.errors import ClientError
from sagemaker_cv.inputs.manifest import ManifestLayout
from sagemaker_cv.inputs.pipe import PipeSample, PipeSettings
from sagemaker_cv.inputs.spool import Spooler

LAYOUT = ManifestLayout(("source-ref", "city-streets-ref"))
MASK_AT = "train_0 sample 4 attribute 'city-streets-ref' (attribute 2 of 2)"


def png(values: np.ndarray, mode: str = "L") -> bytes:
    out = io.BytesIO()
    Image.fromarray(values.astype(np.uint8), mode).save(out, format="PNG")
    return out.getvalue()


def picture(height: int, width: int, seed: int = 0) -> bytes:
    noise = np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)
    return cv2.imencode(".jpg", noise)[1].tobytes()


def flat(height: int, width: int, value: int) -> bytes:
    """One colour, losslessly: every crop of it tells which sample it came from."""
    return cv2.imencode(".png", np.full((height, width, 3), value, dtype=np.uint8))[1].tobytes()


def mask(height: int = 6, width: int = 8) -> np.ndarray:
    values = np.zeros((height, width), np.uint8)
    values[1:3, 2:5], values[4, :] = 1, 255
    return values


def stream(tmp_path: Path, *, layout=LAYOUT, label_map=None, batch_size=2, **kw) -> SegmentationStream:
    spec = StreamSpec("train", "FullyReplicated", layout, label_map or DEFAULT)
    return SegmentationStream(
        spec,
        tmp_path / "input" / "data",
        PipeSettings(timeout=20, log_every=5),
        num_classes=3,
        validation_mode="whole",
        crop_size=16,
        base_size=20,
        threads=2,
        batch_size=batch_size,
        scratch=tmp_path / "scratch",
        **kw,
    )


def convert(tmp_path: Path, image: bytes, label: bytes, **kw):
    return stream(tmp_path, **kw).convert(PipeSample(5, (image, label)), "train_0")


def test_a_good_sample_is_packed_whole(tmp_path):
    image, label = picture(6, 8), png(mask())
    assert convert(tmp_path, image, label) == pack(image, label)


@pytest.mark.parametrize(
    "image,label,message",
    [
        # The attributes in the wrong order: text (an S3 URI) or a mask where the image should be.
        (
            b"s3://bucket/a.png",
            png(mask()),
            "attribute 'source-ref' (attribute 1 of 2): holds 's3://bucket/a.png'",
        ),
        (picture(6, 8), picture(6, 8), "not a PNG image; label masks must be PNG files"),
        (picture(6, 8), b'{"class": 1}', f"""{MASK_AT}: holds '{{"class": 1}}', not a PNG image"""),
        (picture(6, 8), png(mask())[:60], f"{MASK_AT}: a PNG of 60 bytes that does not decode"),
        (
            picture(6, 8),
            png(np.full((6, 8), 17)),
            f"{MASK_AT}: pixel value 17 at row 0, column 0 maps to no class",
        ),
        (picture(6, 8), png(np.dstack([mask(), mask(), mask() * 0]), "RGB"), "channels"),
        (
            picture(7, 8),
            png(mask()),
            f"{MASK_AT}: size 6x8 (height x width) differs from the image ('source-ref') 7x8",
        ),
    ],
    ids=["text-for-image", "jpeg-mask", "text-mask", "truncated-png", "no-class", "rgb-mask", "sizes-differ"],
)
def test_each_defect_names_the_sample_the_attribute_and_the_value(
    tmp_path, monkeypatch, image, label, message
):
    # As in training, once GluonCV's model zoo (through gluoncv.data) has set it: a truncated PNG
    # must still be refused, not decoded as zeros.
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(ClientError) as info:
        convert(tmp_path, image, label)
    assert message in str(info.value)
    assert str(info.value).startswith("train_0 sample 4 attribute ")


def test_pixel_values_are_checked_through_the_label_map(tmp_path):
    scaled = parse_label_map({"scale": 3}, 3)
    values = np.where(mask() == 1, 3, mask())
    assert convert(tmp_path, picture(6, 8), png(values), label_map=scaled)
    with pytest.raises(
        ClientError, match=r"pixel value 9 at row 0, column 0 maps to no class .*\(label map \{'scale': 3\}"
    ):
        convert(tmp_path, picture(6, 8), png(np.full((6, 8), 9)), label_map=scaled)


def test_an_undecodable_image_is_skipped_and_named(tmp_path):
    s = stream(tmp_path)
    assert s.convert(PipeSample(5, (b"\xff\xd8\xff not a whole jpeg", png(mask()))), "train_0") is None
    assert s.skipped == ["train_0 sample 4"]


def chunk_batches(tmp_path: Path, records: list[tuple[int, bytes]], *, train: bool, seed: int = 7):
    s = stream(tmp_path, batch_size=1)
    with Spooler(iter(records), tmp_path / "chunks", batch_size=1) as spool:
        return [batch for chunk in spool for batch in s.iterate(chunk, train=train, seed=seed)]


def test_batches_are_file_modes_transforms_of_the_decoded_sample(tmp_path):
    images = [picture(30, 20, i) for i in range(3)]
    masks = [mask(30, 20) for _ in range(3)]
    records = [(n, pack(i, m)) for n, (i, m) in enumerate(zip(images, map(png, masks)), 1)]
    # Validation (whole images) gives what File mode's reader gives for the same files.
    for n, name in enumerate(("a", "b", "c")):
        (tmp_path / f"{name}.jpg").write_bytes(images[n])
        (tmp_path / f"{name}.png").write_bytes(png(masks[n]))
    split = Split(
        "validation",
        [(tmp_path / f"{x}.jpg", tmp_path / f"{x}.png") for x in "abc"],
        DEFAULT,
    )
    files = SegmentationSamples(split, 3, "whole", 16, 20)
    for n, (pixels, labels) in enumerate(chunk_batches(tmp_path, records, train=False)):
        assert pixels.dtype == np.uint8 and pixels.shape == (1, 30, 20, 3) and labels.shape == (1, 30, 20)
        assert np.array_equal(pixels[0], files[n][0]) and np.array_equal(labels[0], files[n][1])
    # Training: File mode's random crop, drawn from (seed, sample number).
    for (pixels, labels), (n, _) in zip(chunk_batches(tmp_path, records, train=True), records):
        expected = transform(*files.load(n - 1), "train", 16, 20, (7, n))
        assert pixels.shape == (1, 16, 16, 3)
        assert np.array_equal(pixels[0], expected[0]) and np.array_equal(labels[0], expected[1])


def test_two_workers_share_a_fully_replicated_stream(tmp_path, feeders):
    """Each worker keeps its own samples (disjoint, together all of them), skips undecodable
    images, and both run the same number of batches."""
    s3 = tmp_path / "s3"
    s3.mkdir()
    lines = []
    for i in range(9):
        (s3 / f"{i}.png").write_bytes(b"broken" if i == 4 else flat(24, 24, 10 * i + 5))
        (s3 / f"{i}-mask.png").write_bytes(png(np.full((24, 24), i % 3)))
        lines.append(json.dumps({"source-ref": f"{i}.png", "label-ref": f"{i}-mask.png"}))
    (s3 / "train.manifest").write_text("\n".join(lines) + "\n")
    roots = [tmp_path / "algo-1", tmp_path / "algo-2"]
    feed = ("--manifest", s3 / "train.manifest", "--attributes", ",".join(DEFAULT_ATTRIBUTES))
    procs = [feeders(root, "train", 1, *feed) for root in roots]
    layout = ManifestLayout(DEFAULT_ATTRIBUTES, assumed=True)
    seen, counts, skipped = [], [], []
    for rank, root in enumerate(roots):
        s = stream(root, layout=layout, workers=2, rank=rank, num_training_samples=9)
        batches = [(pixels[:real, 0, 0, 0] // 10).tolist() for (pixels, _), real in s.epoch(seed=3)]
        counts.append(len(batches))
        seen.append(sorted({v for b in batches for v in b}))
        skipped += s.skipped
    # 9 samples: rank 0 keeps 0, 2, 4, 6, 8 (4 undecodable), rank 1 keeps 1, 3, 5, 7. Both run
    # the first worker's count of the stream, 3 batches of 2, repeating their last chunk.
    assert seen == [[0, 2, 6, 8], [1, 3, 5, 7]]
    assert counts == [3, 3]
    assert skipped == ["train_0 sample 4"]
    for p in procs:
        assert p.wait(timeout=20) == 0
