"""A small semantic-segmentation example dataset written as a SageMaker /opt/ml tree.

Pictures of odd, varying sizes with a noisy background, warm-coloured discs (class 1) and
cool-coloured boxes (class 2); JPEG images and palette (`P` mode) PNG masks, where a one-pixel ring
around every object is 255 ("ignore"), as in Pascal VOC. Masks can also be written scaled
(`--label-map scale`: pixel = class x 3) or remapped (`--label-map map`), with the label map that
decodes them in the label_map channel.

With `--s3-root DIR` the job reads Pipe mode instead: the images and masks move to a local
stand-in of S3 (`DIR/bucket/train/...`), each split gets an augmented manifest
(`DIR/train.manifest`: per image, its `source-ref` then its mask's `label-ref`) and
inputdataconfig.json streams `train` and `validation`; feed them with `tools.pipefeed`.

    python -m sagemaker_cv.tools.segmentation_demo --root demo/ml [--label-map scale|map] [--s3-root DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from sagemaker_cv.tools.demo import write_job_config

IGNORE = 255
SCALE = 3
PIXELS = {0: 7, 1: 0, 2: 101}  # class -> pixel value for --label-map map
LABEL_MAPS = {"scale": {"scale": str(SCALE)}, "map": {"map": {str(c): p for c, p in PIXELS.items()}}}
ATTRIBUTES = ("source-ref", "label-ref")
PALETTE = [0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * (3 * 252) + [224, 224, 192]  # VOC's colours, 255 last


def draw(height: int, width: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One RGB picture and its class mask (0 background, 1 disc, 2 box, 255 object borders)."""
    image = rng.normal(110, 35, (height, width, 3))
    mask = np.zeros((height, width), np.uint8)
    yy, xx = np.mgrid[0:height, 0:width]
    for _ in range(int(rng.integers(1, 4))):
        cls = int(rng.integers(1, 3))
        size = rng.uniform(0.15, 0.3) * min(height, width)
        cy, cx = rng.uniform(size, height - size), rng.uniform(size, width - size)
        if cls == 1:
            dist = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2) - size
        else:
            dist = np.maximum(np.abs(yy - cy), np.abs(xx - cx)) - size
        inside = dist < 0
        warm = (rng.uniform(170, 250), rng.uniform(40, 120), rng.uniform(0, 60))
        cool = (rng.uniform(0, 60), rng.uniform(60, 160), rng.uniform(170, 250))
        image[inside] = np.array(warm if cls == 1 else cool) + rng.normal(0, 15, (int(inside.sum()), 3))
        mask[inside] = cls
        mask[(dist >= 0) & (dist < 1)] = IGNORE
    return np.clip(image, 0, 255).astype(np.uint8), mask


def encode(mask: np.ndarray, label_map: str | None) -> np.ndarray:
    """Class indices -> the pixel values the chosen label map decodes (255 stays 255)."""
    if label_map == "scale":
        return np.where(mask == IGNORE, IGNORE, mask * SCALE).astype(np.uint8)
    if label_map == "map":
        table = np.arange(256, dtype=np.uint8)
        for cls, pixel in PIXELS.items():
            table[cls] = pixel
        return table[mask]
    return mask


def write_split(
    images: Path, masks: Path, count: int, sizes: tuple[int, int], label_map: str | None, rng
) -> None:
    images.mkdir(parents=True, exist_ok=True)
    masks.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        height, width = (int(v) for v in rng.integers(sizes[0], sizes[1] + 1, 2))
        image, mask = draw(height, width, rng)
        cv2.imwrite(str(images / f"img_{i:04d}.jpg"), image[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
        values = encode(mask, label_map)
        if label_map is None:  # palette indices are the classes, as VOC writes its masks
            png = Image.frombytes("P", (width, height), values.tobytes())
            png.putpalette(PALETTE)
        else:
            png = Image.frombytes("L", (width, height), values.tobytes())
        png.save(masks / f"img_{i:04d}.png")


def write_segmentation_tree(
    root: Path,
    *,
    train: int = 48,
    validation: int = 12,
    sizes: tuple[int, int] = (41, 57),
    label_map: str | None = None,
    seed: int = 0,
    hyperparameters: dict | None = None,
) -> dict:
    """Write a complete /opt/ml tree for semantic segmentation; return its hyperparameters."""
    if label_map not in (None, "scale", "map"):
        raise ValueError(f"label_map={label_map!r}: expected None, 'scale' or 'map'")
    root = Path(root)
    rng = np.random.default_rng(seed)
    data = root / "input" / "data"
    write_split(data / "train", data / "train_annotation", train, sizes, label_map, rng)
    write_split(data / "validation", data / "validation_annotation", validation, sizes, label_map, rng)
    channels = {
        "train": "image/jpeg",
        "validation": "image/jpeg",
        "train_annotation": "image/png",
        "validation_annotation": "image/png",
    }
    if label_map:
        (data / "label_map").mkdir(parents=True, exist_ok=True)
        (data / "label_map" / "train_label_map.json").write_text(json.dumps(LABEL_MAPS[label_map]))
        channels["label_map"] = "application/json"
    hp = {
        "num_classes": "3",
        "num_training_samples": str(train),
        "algorithm": "fcn",
        "backbone": "resnet-50",
        "use_pretrained_model": "False",
        "crop_size": "40",
        "base_size": "48",
        "epochs": "12",
        "mini_batch_size": "8",
        "validation_mini_batch_size": "1",
        "optimizer": "adam",
        "learning_rate": "0.001",
    }
    hp.update({k: str(v) for k, v in (hyperparameters or {}).items()})
    spec = {
        name: {
            "ContentType": ctype,
            "TrainingInputMode": "File",
            "S3DistributionType": "FullyReplicated",
            "RecordWrapperType": "None",
        }
        for name, ctype in channels.items()
    }
    write_job_config(root, hp, spec)
    return hp


def pipe_channel(attributes: tuple[str, ...] = ATTRIBUTES) -> dict:
    """inputdataconfig.json's entry for a split streamed as an augmented manifest of image and mask
    references."""
    return {
        "ContentType": "application/x-recordio",
        "TrainingInputMode": "Pipe",
        "S3DistributionType": "FullyReplicated",
        "RecordWrapperType": "RecordIO",
        "AttributeNames": list(attributes),
    }


def move_to_manifests(root: Path, s3_root: Path, attributes: tuple[str, ...] = ATTRIBUTES) -> dict[str, Path]:
    """Turn a tree written by `write_segmentation_tree` into a Pipe-mode job: its images and
    masks move to `s3_root/bucket/<channel>/`, each split gets an augmented manifest
    `s3_root/<split>.manifest` (`s3://bucket/...` references, the image first) and streams in
    Pipe mode without its annotation channel. Returns the manifests by split."""
    data, config = root / "input" / "data", root / "input" / "config" / "inputdataconfig.json"
    channels = json.loads(config.read_text())
    manifests = {}
    for split in ("train", "validation"):
        lines = [
            json.dumps(
                {
                    attributes[0]: f"s3://bucket/{split}/{image.name}",
                    attributes[1]: f"s3://bucket/{split}_annotation/{image.stem}.png",
                }
            )
            for image in sorted((data / split).iterdir())
        ]
        for channel in (split, f"{split}_annotation"):
            (s3_root / "bucket").mkdir(parents=True, exist_ok=True)
            shutil.move(data / channel, s3_root / "bucket" / channel)
            channels.pop(channel)
        manifests[split] = s3_root / f"{split}.manifest"
        manifests[split].write_text("\n".join(lines) + "\n")
        channels[split] = pipe_channel(attributes)
    config.write_text(json.dumps(channels, indent=2))
    return manifests


#: what guessing scores on the example data (`make demo` prints it beside the best score)
CHANCE = "all background scores about 0.27"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", type=Path, required=True, help="where to write the /opt/ml tree")
    parser.add_argument("--label-map", choices=("scale", "map"), help="encode masks through a label map")
    parser.add_argument("--train", type=int, default=48)
    parser.add_argument("--validation", type=int, default=12)
    parser.add_argument("--s3-root", type=Path, help="Pipe mode: move the data here and write manifests")
    args = parser.parse_args(argv)
    hp = write_segmentation_tree(
        args.root, train=args.train, validation=args.validation, label_map=args.label_map
    )
    print(f"Wrote a semantic-segmentation /opt/ml tree to {args.root} with hyperparameters {hp}")
    if args.s3_root:
        for split, path in move_to_manifests(args.root, args.s3_root).items():
            print(
                f"python -m sagemaker_cv.tools.pipefeed --ml-root {args.root} --channel {split} --epochs "
                f"{hp['epochs']} --manifest {path} --attributes {','.join(ATTRIBUTES)} --s3-root {args.s3_root} &"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
