"""Segmentation data on tiny files: pairing, mask modes, label-map files, and every defect as a
ClientError naming the file, the value and where it is."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from sagemaker_cv.algorithms.segmentation import data
from sagemaker_cv.algorithms.segmentation.dataset import load_label_maps, read_mask, scan_split
from sagemaker_cv.algorithms.segmentation.labels import DEFAULT, parse_label_map
from sagemaker_cv.contract.config import Channel
from sagemaker_cv.contract.errors import ClientError
from sagemaker_cv.contract.paths import MLPaths


def write_image(path: Path, height: int = 6, width: int = 8) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)
    cv2.imwrite(str(path), image)


def write_mask(path: Path, values: np.ndarray, mode: str = "L") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == "P":
        img = Image.frombytes("P", values.shape[::-1], values.astype(np.uint8).tobytes())
        img.putpalette([255 - i % 256 for i in range(768)])  # colours unrelated to the indices
    elif mode == "RGB":
        img = Image.fromarray(values.astype(np.uint8), "RGB")
    else:
        img = Image.fromarray(values.astype(np.uint8), "L")
    img.save(path)


def split_dirs(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "train", tmp_path / "train_annotation"


def scan(tmp_path: Path, label_map=DEFAULT, num_classes: int = 3):
    images, masks = split_dirs(tmp_path)
    return scan_split("train", images, masks, label_map, num_classes, threads=2)


def problems(tmp_path: Path, **kwargs) -> str:
    with pytest.raises(ClientError) as info:
        scan(tmp_path, **kwargs)
    return "\n".join(info.value.problems)


def test_pairs_by_relative_name_and_reads_palette_indices(tmp_path):
    images, masks = split_dirs(tmp_path)
    write_image(images / "a.jpg")
    write_image(images / "sub" / "b.png")
    values = np.array([[0, 1, 2, 255, 0, 1, 2, 0]] * 6)
    write_mask(masks / "a.png", values, "P")
    write_mask(masks / "sub" / "b.png", values)
    split = scan(tmp_path)
    assert [(i.name, m.name) for i, m in split.samples] == [("a.jpg", "a.png"), ("b.png", "b.png")]
    decoded, problem = read_mask(masks / "a.png")
    assert problem is None and decoded.tolist() == values.tolist()  # indices, not palette colours


def test_rgb_mask_with_equal_channels_is_one_channel(tmp_path):
    images, masks = split_dirs(tmp_path)
    write_image(images / "a.jpg")
    write_mask(masks / "a.png", np.stack([np.ones((6, 8))] * 3, axis=-1), "RGB")
    assert scan(tmp_path).count == 1


def test_non_image_files_are_skipped(tmp_path):
    images, masks = split_dirs(tmp_path)
    write_image(images / "a.jpg")
    write_mask(masks / "a.png", np.zeros((6, 8)))
    (images / "README.txt").write_text("not an image")
    (masks / "notes.json").write_text("{}")
    (images / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    split = scan(tmp_path)
    assert split.count == 1
    assert sorted(split.skipped) == ["train/README.txt", "train/broken.jpg", "train_annotation/notes.json"]


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (
            lambda i, m: write_mask(m / "a.png", np.array([[0, 1, 9, 0, 0, 0, 0, 0]] * 6)),
            "train_annotation/a.png: pixel value 9 at row 0, column 2 maps to no class (6 such pixels)",
        ),
        (
            lambda i, m: write_mask(m / "a.png", np.zeros((5, 8))),
            "train_annotation/a.png: size 5x8 (height x width) differs from train/a.jpg 6x8",
        ),
        (lambda i, m: None, "train/a.jpg: no label image train_annotation/a.png"),
        (
            lambda i, m: (
                write_mask(m / "a.png", np.zeros((6, 8))),
                write_mask(m / "extra.png", np.zeros((6, 8))),
            ),
            "train_annotation/extra.png: no image with this name in train",
        ),
        (
            lambda i, m: write_mask(
                m / "a.png", np.dstack([np.zeros((6, 8)), np.zeros((6, 8)), np.eye(6, 8)]), "RGB"
            ),
            "train_annotation/a.png: has 3 channels that are not equal (values 0, 0, 1 at row 0, column 0)",
        ),
        (
            lambda i, m: (write_mask(m / "a.png", np.zeros((6, 8))), write_image(i / "a.png")),
            "train/a.jpg and train/a.png: several files with the same name stem",
        ),
        (
            lambda i, m: (m.mkdir(parents=True), (m / "a.png").write_text("not a png")),
            "train_annotation/a.png: not a readable image, so train/a.jpg has no labels",
        ),
    ],
)
def test_each_defect_names_the_file_value_and_place(tmp_path, make, expected):
    images, masks = split_dirs(tmp_path)
    write_image(images / "a.jpg")
    make(images, masks)
    assert expected in problems(tmp_path)


def test_masks_are_decoded_through_the_label_map(tmp_path):
    images, masks = split_dirs(tmp_path)
    write_image(images / "a.jpg")
    write_mask(masks / "a.png", np.array([[0, 3, 6, 255, 0, 3, 6, 0]] * 6))
    assert "pixel value 3" in problems(tmp_path)  # 3 is no class of three with the default map
    assert scan(tmp_path, label_map=parse_label_map({"scale": "3"}, 3)).count == 1


def test_problems_are_capped_with_a_count(tmp_path):
    images, masks = split_dirs(tmp_path)
    for i in range(15):
        write_image(images / f"{i}.jpg")
    text = problems(tmp_path)
    assert text.count("no label image") == 12 and "... and 3 more" in text


def test_label_map_files(tmp_path):
    directory = tmp_path / "label_map"
    directory.mkdir()
    maps = load_label_maps(None, 3)
    assert maps.train is DEFAULT and maps.validation is DEFAULT and maps.provided == ()
    (directory / "train_label_map.json").write_text(json.dumps({"scale": "3"}))
    (directory / "other.txt").write_text("x")
    maps = load_label_maps(directory, 3)
    # Without its own file, validation uses the training map.
    assert maps.train.scale == 3 and maps.validation is maps.train and maps.provided == ("train",)
    assert "label_map/other.txt: not train_label_map.json" in maps.notes[0]
    (directory / "validation_label_map.json").write_text(json.dumps({"map": {"0": 1, "1": 2, "2": 0}}))
    assert load_label_maps(directory, 3).validation.pixels == ((0, 2), (1, 0), (2, 1))
    # A byte-order mark (Windows editors write one) is fine.
    (directory / "validation_label_map.json").write_bytes(b"\xef\xbb\xbf" + json.dumps({"scale": 2}).encode())
    assert load_label_maps(directory, 3).validation.spec == {"scale": 2}
    (directory / "validation_label_map.json").write_text("{not json")
    (directory / "train_label_map.json").write_text(json.dumps({"scale": -1}))
    with pytest.raises(ClientError) as info:
        load_label_maps(directory, 3)
    assert "label_map/train_label_map.json: scale=-1: expected a positive integer" in info.value.problems
    assert any(
        p.startswith("label_map/validation_label_map.json: not valid JSON") for p in info.value.problems
    )


def _channels(**overrides) -> dict[str, Channel]:
    names = ("train", "validation", "train_annotation", "validation_annotation")
    channels = {n: Channel(n) for n in names}
    channels.update(overrides)
    return {k: v for k, v in channels.items() if v is not None}


PIPE = {"input_mode": "Pipe", "content_type": "application/x-recordio", "record_wrapper": "RecordIO"}


def test_channels_in_file_and_pipe_mode(tmp_path):
    paths = MLPaths(tmp_path)
    for name in ("train", "validation", "train_annotation", "validation_annotation"):
        paths.channel(name).mkdir(parents=True)
    assert data.resolve(_channels(), paths).label_map is None
    # The model channel is training.incremental's to check and read.
    assert data.resolve(_channels(model=Channel("model")), paths).label_map is None
    # Pipe mode: the masks come in the stream, so no annotation channels; AttributeNames assumed
    # when absent. The splits may differ in mode.
    named = Channel("train", extra={"AttributeNames": ["source-ref", "city-streets-ref"]}, **PIPE)
    piped = data.resolve(
        _channels(
            train=named,
            validation=Channel("validation", **PIPE),
            train_annotation=None,
            validation_annotation=None,
        ),
        paths,
    )
    assert piped.images == {} and piped.masks == {}
    assert piped.streams["train"].layout.attributes == ("source-ref", "city-streets-ref")
    assert piped.streams["validation"].layout.attributes == ("source-ref", "label-ref")
    assert piped.streams["validation"].layout.assumed
    mixed = data.resolve(_channels(train=named, train_annotation=None), paths)
    assert list(mixed.streams) == ["train"] and list(mixed.images) == ["validation"]
    cases = {
        "channel 'train' RecordWrapperType='None' in Pipe mode: semantic segmentation streams augmented "
        "manifests only": _channels(train=Channel("train", input_mode="Pipe"), train_annotation=None),
        "channel 'train' AttributeNames=['source-ref', 'label']: 'label' does not end in -ref": _channels(
            train=Channel("train", extra={"AttributeNames": ["source-ref", "label"]}, **PIPE),
            train_annotation=None,
        ),
        "channel 'train' RecordWrapperType=RecordIO (an augmented manifest) in File mode: SageMaker streams "
        "augmented manifests in Pipe mode only": _channels(
            train=Channel("train", content_type="application/x-recordio", record_wrapper="RecordIO")
        ),
        "channel 'train' ContentType='application/x-recordio' in File mode: RecordIO is read only as an "
        "augmented manifest in Pipe mode": _channels(
            train=Channel("train", content_type="application/x-recordio")
        ),
        "channel 'train_annotation': not used while 'train' streams in Pipe mode": _channels(train=named),
        "channel 'label_map': Pipe input mode is for the RecordIO channels train and validation": _channels(
            label_map=Channel("label_map", input_mode="Pipe")
        ),
        # File mode still needs every annotation channel, with the same message as before.
        "channel 'validation_annotation' is missing: semantic segmentation needs train, validation, "
        "train_annotation, validation_annotation": _channels(validation_annotation=None),
        "channel 'validation_annotation' is missing: semantic segmentation needs train, validation, "
        "validation_annotation": _channels(train=named, train_annotation=None, validation_annotation=None),
        "channel 'extra': not used by semantic segmentation": _channels(extra=Channel("extra")),
    }
    for message, channels in cases.items():
        with pytest.raises(ClientError) as info:
            data.resolve(channels, paths)
        assert message in str(info.value), message


def test_a_model_archive_gives_its_network_from_hyperparams_json(tmp_path):
    from sagemaker_cv.algorithms.segmentation import archive

    with pytest.raises(ClientError, match="the archive lacks model_algo-1, hyperparams.json"):
        archive.archive_facts(tmp_path)
    (tmp_path / "model_algo-1").write_bytes(b"")
    # As the built-in writes it: every value a string, and keys that do not shape the network.
    hp = {"algorithm": "deeplab", "backbone": "resnet-101", "num_classes": "21", "crop_size": "480"}
    (tmp_path / "hyperparams.json").write_text(json.dumps({**hp, "epochs": "30"}))
    assert archive.archive_facts(tmp_path) == {
        "algorithm": "deeplab",
        "backbone": "resnet-101",
        "num_classes": 21,
        "crop_size": 480,
    }
