"""A small built-in example dataset written as a SageMaker /opt/ml tree: synthetic pictures of
stripes, discs and checkerboards in random colours, positions and noise. A network must learn
the shapes (colour alone says nothing), yet a small ResNet gets there in a few CPU epochs.

    python -m sagemaker_cv.tools.demo --root demo/ml [--content recordio|lst] [--multi-label]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

PATTERNS = ("horizontal", "vertical", "disc", "checkerboard", "diagonal")


def draw(pattern: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """One size x size BGR picture of `pattern`."""
    fg, bg = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    while np.abs(fg.astype(int) - bg.astype(int)).sum() < 150:  # keep the pattern visible
        fg = rng.integers(0, 256, 3)
    yy, xx = np.mgrid[0:size, 0:size]
    period = rng.integers(max(3, size // 10), max(5, size // 4))
    phase = rng.integers(0, period)
    if pattern == "horizontal":
        mask = ((yy + phase) // (period // 2 or 1)) % 2 == 0
    elif pattern == "vertical":
        mask = ((xx + phase) // (period // 2 or 1)) % 2 == 0
    elif pattern == "diagonal":
        mask = ((xx + yy + phase) // (period // 2 or 1)) % 2 == 0
    elif pattern == "checkerboard":
        cell = period // 2 or 1
        mask = ((xx // cell) + (yy // cell)) % 2 == 0
    else:  # disc
        r = rng.uniform(size * 0.2, size * 0.4)
        cy, cx = rng.uniform(r, size - r, 2)
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
    image = np.where(mask[..., None], fg, bg).astype(np.float32)
    image += rng.normal(0, 12, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def multi_label_picture(labels: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Quadrants: each present class draws its pattern in one quadrant, the others are noise."""
    half = size // 2
    image = rng.normal(128, 30, (size, size, 3)).clip(0, 255).astype(np.uint8)
    quadrants = rng.permutation(4)
    for q, cls in zip(quadrants, np.flatnonzero(labels)):
        y, x = divmod(int(q), 2)
        image[y * half : (y + 1) * half, x * half : (x + 1) * half] = draw(PATTERNS[cls], half, rng)
    return image


def _write_split(
    directory: Path, count_per_class: int, num_classes: int, size: int, multi_label: bool, rng, ext: str
) -> list[str]:
    """Write the images; return .lst lines (index, labels..., relative path)."""
    directory.mkdir(parents=True, exist_ok=True)
    lines = []
    index = 0
    for cls in range(num_classes):
        for i in range(count_per_class):
            if multi_label:
                labels = rng.integers(0, 2, num_classes)
                labels[cls] = 1  # every class is present in at least count_per_class images
                image = multi_label_picture(labels, size, rng)
                label_cols = "\t".join(str(int(v)) for v in labels)
            else:
                image = draw(PATTERNS[cls], size, rng)
                label_cols = str(cls)
            rel = f"{PATTERNS[cls]}/{PATTERNS[cls]}_{i:04d}{ext}"
            (directory / rel).parent.mkdir(parents=True, exist_ok=True)
            ok, buf = cv2.imencode(ext, image)
            assert ok
            (directory / rel).write_bytes(buf.tobytes())
            lines.append(f"{index}\t{label_cols}\t{rel}")
            index += 1
    return lines


def im2rec(lst: Path, image_root: Path, *, pack_label: bool) -> Path:
    """Pack a .lst into .rec with MXNet's own im2rec tool (as users do)."""
    cmd = [sys.executable, "-m", "mxnet.tools.im2rec", "--num-thread", "1", "--no-shuffle", "--pass-through"]
    if pack_label:
        cmd.append("--pack-label")
    subprocess.run([*cmd, str(lst.with_suffix("")), str(image_root)], check=True, capture_output=True)
    return lst.with_suffix(".rec")


def write_example_tree(
    root: Path,
    *,
    content: str = "recordio",
    num_classes: int = 3,
    per_class: int = 60,
    val_per_class: int = 20,
    image_size: int = 40,
    multi_label: bool = False,
    seed: int = 0,
    hyperparameters: dict | None = None,
) -> dict:
    """Write a complete /opt/ml tree for image classification; return its hyperparameters."""
    if content not in ("recordio", "lst"):
        raise ValueError(f"content={content!r}: expected 'recordio' or 'lst'")
    if not 2 <= num_classes <= len(PATTERNS):
        raise ValueError(f"num_classes={num_classes}: expected 2..{len(PATTERNS)}")
    root = Path(root)
    rng = np.random.default_rng(seed)
    data = root / "input" / "data"
    ext = ".png" if content == "lst" else ".jpg"
    splits = {"train": per_class, "validation": val_per_class}
    channels = {}
    for split, count in splits.items():
        lines = _write_split(data / split, count, num_classes, image_size, multi_label, rng, ext)
        if content == "lst":
            lst_dir = data / f"{split}_lst"
            lst_dir.mkdir(parents=True, exist_ok=True)
            (lst_dir / f"{split}.lst").write_text("\n".join(lines) + "\n")
            channels[split] = channels[f"{split}_lst"] = {"ContentType": "application/x-image"}
        else:
            work = root / "work"
            work.mkdir(parents=True, exist_ok=True)
            lst = work / f"{split}.lst"
            lst.write_text("\n".join(lines) + "\n")
            rec = im2rec(lst, data / split, pack_label=multi_label)
            # The channel holds only the .rec, as a user uploads it.
            images = data / split
            for sub in list(images.iterdir()):
                if sub.is_dir():
                    for f in sub.iterdir():
                        f.unlink()
                    sub.rmdir()
            rec.replace(images / rec.name)
            for extra in work.iterdir():
                extra.unlink()
            work.rmdir()
            channels[split] = {"ContentType": "application/x-recordio"}
    for spec in channels.values():
        spec.update(
            {
                "TrainingInputMode": "File",
                "S3DistributionType": "FullyReplicated",
                "RecordWrapperType": "None",
            }
        )
    hp = {
        "num_classes": str(num_classes),
        "num_training_samples": str(per_class * num_classes),
        "num_layers": "20",
        "image_shape": f"3,{image_size - 8},{image_size - 8}",
        "mini_batch_size": "16",
        "epochs": "10",
        "learning_rate": "0.05",
        "optimizer": "sgd",
        "augmentation_type": "crop",
    }
    if content == "lst":
        hp["resize"] = str(image_size)
    if multi_label:
        hp["multi_label"] = "1"
    hp.update(hyperparameters or {})
    write_job_config(root, hp, channels)
    return hp


def write_job_config(root: Path, hyperparameters: dict, channels: dict) -> None:
    """The config files of a single-host job (`channels` is inputdataconfig.json's content) and the
    model and output directories, as SageMaker lays them out."""
    config = root / "input" / "config"
    config.mkdir(parents=True, exist_ok=True)
    (config / "hyperparameters.json").write_text(json.dumps(hyperparameters, indent=2))
    (config / "inputdataconfig.json").write_text(json.dumps(channels, indent=2))
    (config / "resourceconfig.json").write_text(
        json.dumps({"current_host": "algo-1", "hosts": ["algo-1"], "network_interface_name": "eth0"})
    )
    for sub in ("model", "output/data"):
        (root / sub).mkdir(parents=True, exist_ok=True)


#: what guessing scores on the example data (`make demo` prints it beside the best score)
CHANCE = "3 classes: chance is 0.33"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", type=Path, required=True, help="where to write the /opt/ml tree")
    parser.add_argument("--content", choices=("recordio", "lst"), default="recordio")
    parser.add_argument("--multi-label", action="store_true")
    parser.add_argument("--num-classes", type=int, default=3)
    parser.add_argument("--per-class", type=int, default=60)
    args = parser.parse_args(argv)
    hp = write_example_tree(
        args.root,
        content=args.content,
        multi_label=args.multi_label,
        num_classes=args.num_classes,
        per_class=args.per_class,
    )
    print(f"Wrote an image-classification /opt/ml tree to {args.root} with hyperparameters {hp}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
