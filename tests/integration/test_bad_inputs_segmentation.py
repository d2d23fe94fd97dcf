"""Semantic segmentation: every broken input ends in `validate` as a ClientError that names the file
(and pixel) and what would be valid; never a crash, a blow-up, silence, or the internals of MXNet,
OpenCV, Pillow or Python. One table: the input, the exit code, the words.

Tier: fast (each case is `validate` in this process on a copy of a six-image tree).
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from bad_inputs import (
    Case,
    check,
    deep,
    fifo,
    link_loop,
    link_outside,
    png_header,
    set_hyperparameters,
    validate,
    write,
)
from PIL import Image

from sagemaker_cv.tools.segmentation_demo import write_segmentation_tree

pytestmark = pytest.mark.fast

HP = {"crop_size": 40, "base_size": 48, "mini_batch_size": 2, "validation_mini_batch_size": 1, "epochs": 1}
MAP = "label_map/train_label_map.json"
#: a file the listing refused is named once, never again as the partner's "missing" file
MISSING = ("no label image", "no image with this name", "not a readable image")


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    made = {}
    for label_map in (None, "map"):
        made[label_map] = tmp_path_factory.mktemp("bases") / str(label_map)
        write_segmentation_tree(
            made[label_map], train=4, validation=2, label_map=label_map, hyperparameters=HP
        )
    return made


def mask_32_bit(relative: str, value: int):
    """A 32-bit (mode I) mask of the image's size, all class 0 of the 'map' label map but one pixel
    (a TIFF: the masks' reader goes by content, not by name)."""

    def edit(root):
        path = root / "input/data" / relative
        with Image.open(path) as old:
            width, height = old.size
        values = np.full((height, width), 7, dtype=np.int32)  # pixel 7 is class 0 in the demo's map
        values[0, 0] = value
        buffer = io.BytesIO()
        Image.fromarray(values, mode="I").save(buffer, format="TIFF")  # PNG holds 16 bits at most
        path.write_bytes(buffer.getvalue())

    return edit


CASES = {
    None: [
        Case("crop-size-4096", set_hyperparameters(crop_size=4096), 2, ("crop_size", "2048")),
        Case("crop-size-3072", set_hyperparameters(crop_size=3072), 2, ("crop_size", "2048")),
        Case("base-size-100000", set_hyperparameters(base_size=100000), 2, ("base_size", "2048")),
        Case(
            "more-memory-than-the-host",
            set_hyperparameters(crop_size=2048, mini_batch_size=1000),
            2,
            (
                "algorithm=fcn with crop_size=2048 and mini_batch_size=1000 needs at least about",
                "lower mini_batch_size or crop_size",
            ),
        ),
        Case(
            "14000x14000-mask",
            write("train_annotation/img_0001.png", png_header(14000, 14000, mode=0)),
            2,
            (
                "train_annotation/img_0001.png: is 196,000,000 pixels, more than the 4,194,304 pixels (2048x2048)",
                "downscale the image and its mask alike",
            ),
        ),
        Case(
            "3000x2000-image",
            write("validation/img_0000.jpg", png_header(3000, 2000)),
            2,
            (
                "validation/img_0000.jpg: is 3000x2000 pixels (width x height), more than the 4,194,304 pixels",
            ),
        ),
        Case(
            "symlink-out-of-the-channel",
            link_outside("train/img_0002.jpg"),
            2,
            ("train/img_0002.jpg: is a symlink to", "outside the train channel"),
            MISSING,
        ),
        Case(
            "symlink-loop",
            link_loop("train_annotation/img_0002.png"),
            2,
            (
                "train_annotation/img_0002.png: is a symlink to loop-img_0002.png (Too many levels of symbolic links)",
            ),
            MISSING,
        ),
        Case(
            "fifo-mask",
            fifo("validation_annotation/img_0001.png"),
            2,
            (
                "validation_annotation/img_0001.png: is a FIFO (named pipe); File-mode input must be regular files",
            ),
            MISSING,
        ),
        Case(
            "fifo-image",
            fifo("train/img_0001.jpg"),
            2,
            ("train/img_0001.jpg: is a FIFO (named pipe); File-mode input must be regular files",),
            MISSING,
        ),
    ],
    "map": [
        Case(
            "label-map-nested-200000-deep",
            write(MAP, deep(200000)),
            2,
            (f"{MAP}: not valid JSON (lists and objects nested too deeply)",),
        ),
        Case(
            "label-map-integer-of-5000-digits",
            write(MAP, '{"scale": ' + "3" * 5000 + "}"),
            2,
            (f"{MAP}: not valid JSON (holds a number of more than 4300 digits)",),
        ),
        Case(
            "label-map-integer-of-400-digits",
            write(MAP, '{"scale": ' + "3" * 400 + ".0}"),
            2,
            (f"{MAP}: scale=",),
        ),
        Case(
            "label-map-nan",
            write(MAP, '{"scale": NaN}'),
            2,
            (f"{MAP}: not valid JSON (NaN is not a JSON number)",),
        ),
        # A byte-order mark is read past: the map's own value is what is wrong.
        Case(
            "label-map-with-bom",
            write(MAP, "\ufeff" + '{"scale": 0}'),
            2,
            (f"{MAP}: scale=0: expected a positive integer",),
            ("not valid JSON", "UTF-8"),
        ),
        Case("fifo-label-map", fifo(MAP), 2, (f"{MAP}: is a FIFO (named pipe)",)),
        # A 32-bit mask with one pixel at 2e9 built a lookup table of 16 GB.
        Case(
            "32-bit-mask-pixel-at-2e9",
            mask_32_bit("train_annotation/img_0001.png", 2_000_000_000),
            2,
            (
                "train_annotation/img_0001.png: pixel value 2000000000 at row 0, column 0 maps to no class",
                "255 means ignore",
            ),
        ),
        Case(
            "label-map-integer-of-400-digits",
            write(MAP, '{"map": {"0": ' + "1" * 400 + "}}"),
            2,
            (f"{MAP}: map['0'] (pixel value)=111", "expected an integer of a sensible size"),
        ),
    ],
}
TABLE = [
    pytest.param(label_map, case, id=f"{label_map or 'plain'}-{case.id}")
    for label_map, cases in CASES.items()
    for case in cases
]


@pytest.mark.parametrize(("label_map", "case"), TABLE)
def test_bad_input_is_a_named_client_error(bases, tmp_path, label_map, case):
    code, failure = validate(bases[label_map], tmp_path / "ml", "semantic-segmentation", case.edit)
    check(case, code, failure)
