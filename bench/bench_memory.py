"""Peak memory (RSS) of `validate` and of one epoch of `train` at 1x and 10x the images, for both
input formats: memory must not grow with the dataset (target: growth below 10 %).

Each command runs as a child process; its peak RSS is the kernel's figure for that child
(os.wait4), which CPU sharing does not distort. The images are one 400 px photo-like JPEG (about
100 KB), listed (or packed) N times, trained at 64 px on a CIFAR-size ResNet so that an epoch of
the 10x set stays short on a CPU.

    python bench/bench_memory.py [--images 100] [--scale 10] [--format recordio|lst]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import mxnet as mx
import numpy as np

SIZE = 400


def photo(rng: np.random.Generator) -> bytes:
    """A JPEG with the texture of a photo (smooth shapes plus noise), about 100 KB."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    image = np.dstack([(xx * 0.6 + yy * 0.3) % 256, (xx * yy / 300) % 256, (yy * 0.7) % 256])
    image += rng.normal(0, 20, image.shape)
    return cv2.imencode(".jpg", np.clip(image, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 92])[
        1
    ].tobytes()


def write_job(root: Path, content: str, images: int, jpeg: bytes) -> None:
    data = root / "input" / "data"
    (root / "input" / "config").mkdir(parents=True)
    (data / "train").mkdir(parents=True)
    (root / "model").mkdir()
    if content == "recordio":
        writer = mx.recordio.MXRecordIO(str(data / "train" / "train.rec"), "w")
        for i in range(images):
            writer.write(mx.recordio.pack(mx.recordio.IRHeader(0, float(i % 3), i, 0), jpeg))
        writer.close()
        channels = {"train": {"ContentType": "application/x-recordio"}}
    else:
        (data / "train" / "photo.jpg").write_bytes(jpeg)
        (data / "train_lst").mkdir()
        lines = "".join(f"{i}\t{i % 3}\tphoto.jpg\n" for i in range(images))
        (data / "train_lst" / "train.lst").write_text(lines)
        channels = {
            "train": {"ContentType": "application/x-image"},
            "train_lst": {"ContentType": "application/x-image"},
        }
    hp = {
        "num_classes": "3",
        "num_training_samples": str(images),
        "num_layers": "20",
        "image_shape": "3,64,64",
        "resize": "64",
        "mini_batch_size": "32",
        "epochs": "1",
        "optimizer": "sgd",
    }
    (root / "input" / "config" / "hyperparameters.json").write_text(json.dumps(hp))
    (root / "input" / "config" / "inputdataconfig.json").write_text(json.dumps(channels))


def peak_rss_mib(root: Path, command: str) -> float:
    """Run `sagemaker-cv COMMAND` on `root`; its peak resident set size in MiB."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "sagemaker_cv", command, "--ml-root", str(root)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        failure = root / "output" / "failure"
        raise RuntimeError(
            f"{command} failed: {failure.read_text() if failure.exists() else proc.returncode}"
        )
    return usage.ru_maxrss / 1024  # KiB on Linux


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=100, help="images at 1x")
    parser.add_argument("--scale", type=int, default=10, help="the larger set is this many times the first")
    parser.add_argument("--format", choices=("recordio", "lst"), action="append", help="default: both")
    args = parser.parse_args(argv)
    jpeg = photo(np.random.default_rng(0))
    print(f"Peak RSS (MiB) of validate and of one epoch of train; one {len(jpeg) // 1024} KB JPEG, {SIZE} px")
    print(f"{'format':<10}{'command':<10}{'1x':>10}{f'{args.scale}x':>10}{'growth':>10}")
    worst = 0.0
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as work:
        for content in args.format or ("recordio", "lst"):
            peaks: dict[str, list[float]] = {"validate": [], "train": []}
            for factor in (1, args.scale):
                root = Path(work) / f"{content}-{factor}"
                write_job(root, content, args.images * factor, jpeg)
                for command in peaks:
                    peaks[command].append(peak_rss_mib(root, command))
            for command, (small, large) in peaks.items():
                growth = (large - small) / small * 100
                worst = max(worst, growth)
                print(f"{content:<10}{command:<10}{small:>10.0f}{large:>10.0f}{growth:>9.1f}%")
    print(
        f"Largest growth from {args.images} to {args.images * args.scale} images: {worst:.1f}% (target: below 10%)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
