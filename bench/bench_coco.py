"""Parse time and peak memory (RSS) of object detection's COCO reader on a large instances file.

A synthetic COCO file of `--annotations` boxes (default 100,000) over `--images` images, each box
with a polygon `segmentation` of 24 points as COCO's own files have (most of their bytes), is
written once; then, each in a child process whose peak RSS is the kernel's figure (os.wait4):

* `imports`: the interpreter and the reader's modules only (the baseline: MXNet's libraries
  alone peak near 400 MB while they load, so the resident size is also sampled while reading);
* `parse`: the file read, decoded and checked, the class map made, every image's boxes listed
  (`annotated.read_source`, `make_class_map`, `entries`), no image touched;
* `pack` (with `--pack`): the whole File-mode preparation of the split, with a small JPEG per
  image: each image read, sized, decoded and written into the .rec one at a time.

    python bench/bench_coco.py [--annotations 100000] [--images 20000] [--pack]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CHILD = r"""
import json, sys, threading, time
from pathlib import Path
from sagemaker_cv.algorithms.detection import annotated

def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

# The imports' own peak (MXNet's libraries) can exceed what the reader adds: sample the resident
# size while the reader works, from what the imports left.
root, mode = Path(sys.argv[1]), sys.argv[2]
before = highest = rss_mb()
done = threading.Event()
def sample():
    global highest
    while not done.wait(0.005):
        highest = max(highest, rss_mb())
threading.Thread(target=sample, daemon=True).start()
started = time.perf_counter()
boxes = 0
if mode != "imports":
    sources = {"train": annotated.read_source(root / "train_annotation", "train_annotation")}
    assert not sources["train"].problems, sources["train"].problems[:3]
    class_map, problems = annotated.make_class_map(sources)
    assert not problems, problems
    if mode == "parse":
        found = annotated.entries(sources["train"], class_map, root / "train_annotation", "train_annotation", True)
        boxes = sum(len(e.boxes) for e in found)
    else:
        prepared = annotated.pack_split(
            sources["train"], class_map, (root / "train", root / "train_annotation"), "train",
            len(class_map), 2 + 5 * 40, root / "scratch",
        )
        boxes = prepared.count
seconds = time.perf_counter() - started
done.set()
highest = max(highest, rss_mb())
print(json.dumps({"seconds": seconds, "counted": boxes, "before_mb": before, "during_mb": highest}))
"""


def coco_document(annotations: int, images: int, size: int, rng: np.random.Generator) -> dict:
    categories = [{"id": 1 + 2 * i, "name": f"class-{i}", "supercategory": "thing"} for i in range(80)]
    doc_images = [
        {"id": i + 1, "file_name": f"{i:012d}.jpg", "width": size, "height": size, "license": 1}
        for i in range(images)
    ]
    doc_annotations = []
    for n in range(annotations):
        w, h = (float(v) for v in rng.uniform(4, size / 2, 2))
        x, y = float(rng.uniform(0, size - w)), float(rng.uniform(0, size - h))
        angles = np.linspace(0, 2 * np.pi, 24, endpoint=False)
        polygon = np.stack([x + w / 2 * (1 + np.cos(angles)), y + h / 2 * (1 + np.sin(angles))], 1)
        doc_annotations.append(
            {
                "id": n + 1,
                "image_id": int(rng.integers(1, images + 1)),
                "category_id": categories[int(rng.integers(0, 80))]["id"],
                "bbox": [round(x, 2), round(y, 2), round(w, 2), round(h, 2)],
                "area": round(w * h, 2),
                "iscrowd": 0,
                "segmentation": [np.round(polygon.ravel(), 2).tolist()],
            }
        )
    return {
        "info": {},
        "licenses": [],
        "images": doc_images,
        "annotations": doc_annotations,
        "categories": categories,
    }


def write_images(directory: Path, images: int, size: int) -> None:
    import cv2

    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    picture = cv2.imencode(".jpg", rng.integers(0, 255, (size, size, 3), dtype=np.uint8))[1].tobytes()
    for i in range(images):
        (directory / f"{i:012d}.jpg").write_bytes(picture)


def run_child(root: Path, mode: str) -> dict:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(root), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    out, err = proc.stdout.read(), proc.stderr.read()
    if status != 0:
        raise SystemExit(f"{mode} failed:\n{err[-2000:]}")
    result = json.loads(out.strip().splitlines()[-1])
    result["peak_rss_mb"] = usage.ru_maxrss / 1024
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--annotations", type=int, default=100_000)
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--pack", action="store_true", help="also pack the split with a JPEG per image")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as work:
        root = Path(work)
        notes = root / "train_annotation"
        notes.mkdir()
        started = time.perf_counter()
        doc = coco_document(args.annotations, args.images, args.size, np.random.default_rng(0))
        (notes / "instances.json").write_text(json.dumps(doc))
        del doc
        megabytes = (notes / "instances.json").stat().st_size / 2**20
        print(
            f"COCO file: {args.annotations} annotations over {args.images} images, {megabytes:.0f} MB "
            f"(written in {time.perf_counter() - started:.0f} s)"
        )
        modes = ["imports", "parse"]
        if args.pack:
            write_images(root / "train", args.images, args.size)
            modes.append("pack")
        for mode in modes:
            result = run_child(root, mode)
            print(
                f"{mode:8s} {result['seconds']:6.2f} s   peak RSS {result['peak_rss_mb']:5.0f} MB; resident "
                f"{result['before_mb']:.0f} MB after the imports, at most {result['during_mb']:.0f} MB while "
                f"reading (+{result['during_mb'] - result['before_mb']:.0f} MB)   counted {result['counted']}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
