"""Pipe mode's memory does not grow with the dataset: peak RSS of one epoch read through a FIFO
(a writer process feeding it, as SageMaker does) for datasets of growing size, by

* image classification's Pipe reader, decoding and augmenting every image with ImageRecordIter;
* semantic segmentation's (`--algorithm segmentation`): an augmented manifest of the demo set's
  image and PNG mask pairs, each checked as it streams, then random crops in the thread pool.

The figure is a ratio (largest over smallest), robust to CPU sharing; the images/s are indicative
only.

    python bench/bench_pipe.py [--sizes 2000,8000,32000,64000] [--batch 32]
    python bench/bench_pipe.py --algorithm segmentation --sizes 40,400,4000,16000 --batch 8
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import mxnet as mx
import numpy as np

from sagemaker_cv.algorithms.classification import data
from sagemaker_cv.algorithms.classification.records import LabelRules
from sagemaker_cv.algorithms.classification.stream import ClassificationStream, StreamSpec
from sagemaker_cv.algorithms.segmentation import stream as segmentation
from sagemaker_cv.algorithms.segmentation.labels import DEFAULT
from sagemaker_cv.contract.paths import MLPaths
from sagemaker_cv.inputs.manifest import ManifestLayout
from sagemaker_cv.inputs.pipe import PipeSettings
from sagemaker_cv.tools import pipefeed
from sagemaker_cv.tools.segmentation_demo import ATTRIBUTES, move_to_manifests, write_segmentation_tree

SIZE, CROP, CLASSES = 72, 64, 10
SEGMENTATION_BASE = 72  # the demo's pictures are 41-57 px: scaled to 36-144 px, cropped to CROP


def write_rec(path: Path, records: int) -> int:
    """`records` JPEG records (a pool of distinct noisy pictures, each with its own label)."""
    rng = np.random.default_rng(0)
    pool = [
        cv2.imencode(
            ".jpg", rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 90]
        )[1].tobytes()
        for _ in range(512)
    ]
    writer = mx.recordio.MXRecordIO(str(path), "w")
    for i in range(records):
        writer.write(mx.recordio.pack(mx.recordio.IRHeader(0, float(i % CLASSES), i, 0), pool[i % len(pool)]))
    writer.close()
    return path.stat().st_size


def write_manifest(work: Path, images: int) -> tuple[list, int]:
    """The demo set as an augmented manifest: pipefeed's arguments, and the bytes it streams."""
    tree, s3 = work / "tree", work / "s3"
    write_segmentation_tree(tree, train=images, validation=1)
    manifest = move_to_manifests(tree, s3)["train"]
    size = sum(p.stat().st_size for p in (s3 / "bucket" / "train").iterdir())
    size += sum(p.stat().st_size for p in (s3 / "bucket" / "train_annotation").iterdir())
    return ["--manifest", manifest, "--attributes", ",".join(ATTRIBUTES), "--s3-root", s3], size


def segmentation_stream(root: Path, batch: int, scratch: Path) -> segmentation.SegmentationStream:
    spec = segmentation.StreamSpec("train", "FullyReplicated", ManifestLayout(ATTRIBUTES), DEFAULT)
    return segmentation.SegmentationStream(
        spec,
        MLPaths(root).data_dir,
        PipeSettings(timeout=120),
        num_classes=3,
        validation_mode="whole",
        crop_size=CROP,
        base_size=SEGMENTATION_BASE,
        threads=None,
        batch_size=batch,
        scratch=scratch,
    )


def read_one_epoch(root: Path, batch: int, algorithm: str) -> dict:
    """In a fresh process: one epoch through the Pipe reader; peak RSS and images/s."""
    if algorithm == "segmentation":
        with tempfile.TemporaryDirectory() as scratch:
            return epoch_figures(segmentation_stream(root, batch, Path(scratch)), lambda b: None)
    rules = LabelRules(CLASSES, False, (3, CROP, CROP), None)

    def make_iter(prepared, *, train, seed):
        return data.record_iter(
            prepared,
            batch_size=batch,
            rules=rules,
            train=train,
            augmentation="crop",
            seed=seed,
            shuffle=False,
        )

    with tempfile.TemporaryDirectory() as scratch:
        stream = ClassificationStream(
            StreamSpec("train", "FullyReplicated", None),
            MLPaths(root),
            rules,
            batch_size=batch,
            scratch=Path(scratch),
            settings=PipeSettings(timeout=120),
            make_iter=make_iter,
        )
        return epoch_figures(stream, lambda b: b.data[0].wait_to_read())


def epoch_figures(stream, finish) -> dict:
    """Read one epoch, `finish`ing each batch (MXNet computes asynchronously)."""
    tic, samples, rss = time.perf_counter(), 0, []
    for b, real in stream.epoch(seed=0):
        finish(b)
        samples += real
        rss.append(current_rss_mb())
    seconds = time.perf_counter() - tic
    return {
        "samples": samples,
        "seconds": seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        # RSS over the second half of the epoch: a leak would keep raising it
        "late_rss_mb": float(np.median(rss[len(rss) // 2 :])),
    }


def current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def measure(records: int, batch: int, work: Path, algorithm: str) -> dict:
    work = work / str(records)  # removed after the run: the largest datasets take GBs
    root = work / "ml"
    if algorithm == "segmentation":
        feed, size = write_manifest(work, records)
    else:
        rec = work / "data.rec"
        rec.parent.mkdir(parents=True)
        feed, size = [rec], write_rec(rec, records)
    feeder = pipefeed.start(root, "train", 1, *feed)
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(root), "--batch", str(batch), "--algorithm", algorithm],
        capture_output=True,
        text=True,
        check=True,
    )
    feeder.wait(timeout=60)
    shutil.rmtree(work)
    return {"records": records, "dataset_mb": size / 2**20, **json.loads(out.stdout.strip().splitlines()[-1])}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="2000,8000,32000,64000")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--algorithm", choices=("classification", "segmentation"), default="classification")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(read_one_epoch(args.child, args.batch, args.algorithm)))
        return
    with tempfile.TemporaryDirectory() as work:
        rows = [measure(int(n), args.batch, Path(work), args.algorithm) for n in args.sizes.split(",")]
    print("| records | dataset | peak RSS | median RSS, 2nd half of the epoch | images/s |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['records']} | {r['dataset_mb']:.1f} MB | {r['peak_rss_mb']:.0f} MB | {r['late_rss_mb']:.0f} MB | "
            f"{r['samples'] / r['seconds']:.0f} |"
        )
    data_growth = rows[-1]["dataset_mb"] / rows[0]["dataset_mb"]
    print(
        f"\nlargest / smallest dataset ({data_growth:.0f}x the data): peak RSS x{rows[-1]['peak_rss_mb'] / rows[0]['peak_rss_mb']:.2f}, "
        f"median RSS x{rows[-1]['late_rss_mb'] / rows[0]['late_rss_mb']:.2f}"
    )


if __name__ == "__main__":
    main()
