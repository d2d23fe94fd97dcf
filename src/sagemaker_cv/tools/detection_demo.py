"""A small object-detection example dataset written as a SageMaker /opt/ml tree: discs, squares and
triangles (class 0, 1, 2) in random colours, sizes and places on a noisy background, one to
`max_objects` per picture. Shape says the class, so a detector must learn shapes and where they are.

    python -m sagemaker_cv.tools.detection_demo --root demo/ml [--content recordio|images|coco|voc]

`recordio` packs a detection .lst with MXNet's `im2rec --pack-label`, as the built-in's examples do;
`images` writes JPEGs with one JSON annotation each, with image/jpeg on all four channels; `coco`
the same JPEGs with one COCO instances file per annotation channel (category ids 1, 3, 7: not
contiguous, as COCO's own); `voc` one Pascal VOC XML per image and a classes.txt. The three
annotated forms describe the same boxes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from xml.sax.saxutils import escape

import cv2
import numpy as np

from sagemaker_cv.tools.demo import im2rec, write_job_config

SHAPES = ("disc", "square", "triangle")
CONTENTS = ("recordio", "images", "coco", "voc")
COCO_IDS = (1, 3, 7)  # the category id of each class in `coco` trees
ANNOTATION_TYPES = {"images": "image/jpeg", "coco": "application/json", "voc": "application/xml"}


def _colour(rng: np.random.Generator, background: float) -> tuple[int, int, int]:
    while True:
        colour = rng.integers(0, 256, 3)
        if abs(float(colour.mean()) - background) > 60:  # keep the object visible
            return tuple(int(c) for c in colour)


def draw_picture(
    size: tuple[int, int], classes: list[int], rng: np.random.Generator
) -> tuple[np.ndarray, list[tuple[int, int, int, int, int]]]:
    """A BGR picture of `size` (width, height) with one shape per class in `classes`; returns it and
    the objects as (class, left, top, width, height) in pixels."""
    width, height = size
    background = float(rng.uniform(40, 215))
    image = np.clip(rng.normal(background, 18, (height, width, 3)), 0, 255).astype(np.uint8)
    objects = []
    for cls in classes:
        side = int(rng.uniform(0.25, 0.5) * min(width, height))
        for _ in range(20):  # find a place that overlaps the other objects little
            left, top = int(rng.integers(0, width - side)), int(rng.integers(0, height - side))
            if all(_overlap((left, top, side, side), o[1:]) < 0.2 for o in objects):
                break
        colour = _colour(rng, background)
        if SHAPES[cls] == "disc":
            r = side // 2
            cv2.circle(image, (left + r, top + r), r, colour, -1)
        elif SHAPES[cls] == "square":
            cv2.rectangle(image, (left, top), (left + side - 1, top + side - 1), colour, -1)
        else:
            points = np.array(
                [[left + side // 2, top], [left, top + side - 1], [left + side - 1, top + side - 1]]
            )
            cv2.fillPoly(image, [points.astype(np.int32)], colour)
        objects.append((cls, left, top, side, side))
    return image, objects


def _overlap(a: tuple, b: tuple) -> float:
    """Intersection over the smaller box of two (left, top, width, height) boxes."""
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    return max(0, w) * max(0, h) / min(a[2] * a[3], b[2] * b[3])


def _write_split(directory: Path, count: int, num_classes: int, max_objects: int, rng) -> list[tuple]:
    """Write `count` JPEGs; return (relative path, (width, height), objects) for each."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for i in range(count):
        size = (int(rng.integers(160, 240)), int(rng.integers(160, 240)))
        classes = [int(c) for c in rng.integers(0, num_classes, int(rng.integers(1, max_objects + 1)))]
        image, objects = draw_picture(size, classes, rng)
        name = f"image_{i:04d}.jpg"
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 92])
        assert ok
        (directory / name).write_bytes(buf.tobytes())
        written.append((name, size, objects))
    return written


def annotation(name: str, size: tuple[int, int], objects: list[tuple]) -> dict:
    """The built-in's JSON annotation of one image."""
    return {
        "file": name,
        "image_size": [{"width": size[0], "height": size[1], "depth": 3}],
        "annotations": [
            {"class_id": c, "left": left, "top": top, "width": w, "height": h}
            for c, left, top, w, h in objects
        ],
        "categories": [{"class_id": i, "name": shape} for i, shape in enumerate(SHAPES)],
    }


def coco_file(written: list[tuple], num_classes: int) -> dict:
    """A COCO instances document of the images `written` ((file name, size, objects) each)."""
    images, annotations = [], []
    for image_id, (name, (width, height), objects) in enumerate(written, start=1):
        images.append({"id": image_id, "file_name": name, "width": width, "height": height})
        for c, left, top, w, h in objects:
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": COCO_IDS[c],
                    "bbox": [left, top, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
    categories = [{"id": COCO_IDS[c], "name": SHAPES[c]} for c in range(num_classes)]
    return {"images": images, "annotations": annotations, "categories": categories}


def voc_xml(name: str, size: tuple[int, int], objects: list[tuple]) -> str:
    """A Pascal VOC annotation: corners 1-based and inclusive."""
    parts = [
        f"<annotation><filename>{escape(name)}</filename>",
        f"<size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>",
    ]
    for c, left, top, w, h in objects:
        parts.append(
            f"<object><name>{SHAPES[c]}</name><difficult>0</difficult><bndbox><xmin>{left + 1}</xmin>"
            f"<ymin>{top + 1}</ymin><xmax>{left + w}</xmax><ymax>{top + h}</ymax></bndbox></object>"
        )
    return "".join(parts) + "</annotation>\n"


def write_annotations(notes: Path, content: str, written: list[tuple], num_classes: int) -> None:
    """The annotation channel of one split in the form `content` names."""
    notes.mkdir(parents=True, exist_ok=True)
    if content == "coco":
        (notes / "instances.json").write_text(json.dumps(coco_file(written, num_classes)))
        return
    for name, size, objects in written:
        if content == "voc":
            (notes / f"{Path(name).stem}.xml").write_text(voc_xml(name, size, objects))
        else:
            (notes / f"{Path(name).stem}.json").write_text(json.dumps(annotation(name, size, objects)))
    if content == "voc" and notes.name == "train_annotation":  # fixes the class order (here: sorted anyway)
        (notes / "classes.txt").write_text("".join(f"{shape}\n" for shape in SHAPES[:num_classes]))


def lst_line(index: int, name: str, size: tuple[int, int], objects: list[tuple]) -> str:
    """A detection .lst line: index, header width 2, object width 5, [class, corners as ratios]..., path."""
    width, height = size
    values = [2, 5]
    for c, left, top, w, h in objects:
        values += [c, left / width, top / height, (left + w) / width, (top + h) / height]
    return "\t".join([str(index), *(f"{v:.4f}" for v in values), name])


def write_detection_tree(
    root: Path,
    *,
    content: str = "recordio",
    num_classes: int = 3,
    train_images: int = 120,
    val_images: int = 30,
    max_objects: int = 2,
    seed: int = 0,
    hyperparameters: dict | None = None,
) -> dict:
    """Write a complete /opt/ml tree for object detection; return its hyperparameters."""
    if content not in CONTENTS:
        raise ValueError(f"content={content!r}: expected one of {', '.join(CONTENTS)}")
    if not 1 <= num_classes <= len(SHAPES):
        raise ValueError(f"num_classes={num_classes}: expected 1..{len(SHAPES)}")
    root = Path(root)
    rng = np.random.default_rng(seed)
    data = root / "input" / "data"
    channels = {}
    for split, count in (("train", train_images), ("validation", val_images)):
        written = _write_split(data / split, count, num_classes, max_objects, rng)
        if content != "recordio":
            write_annotations(data / f"{split}_annotation", content, written, num_classes)
            channels[split] = {"ContentType": "image/jpeg"}
            channels[f"{split}_annotation"] = {"ContentType": ANNOTATION_TYPES[content]}
            continue
        lst = root / "work" / f"{split}.lst"
        lst.parent.mkdir(parents=True, exist_ok=True)
        lst.write_text("".join(lst_line(i, *w) + "\n" for i, w in enumerate(written)))
        rec = im2rec(lst, data / split, pack_label=True)
        for name, _, _ in written:  # the channel holds only the .rec, as a user uploads it
            (data / split / name).unlink()
        rec.replace(data / split / rec.name)
        for extra in lst.parent.iterdir():
            extra.unlink()
        lst.parent.rmdir()
        channels[split] = {"ContentType": "application/x-recordio"}
    hp = {
        "num_classes": str(num_classes),
        "num_training_samples": str(train_images),
        "base_network": "resnet-50",
        "use_pretrained_model": "0",
        "mini_batch_size": "8",
        "epochs": "10",
        "label_width": str(2 + 5 * max_objects),
    }
    hp.update(hyperparameters or {})
    for spec in channels.values():
        spec.update(
            {
                "TrainingInputMode": "File",
                "S3DistributionType": "FullyReplicated",
                "RecordWrapperType": "None",
            }
        )
    write_job_config(root, hp, channels)
    return hp


# From scratch on two CPU cores, the demo's job is the toy set's easiest form: one shape (discs) per
# picture, every layer trained (random stages left frozen kept mAP at 0), with the built-in's default
# optimizer (sgd, learning rate 0.001). SSD's loss is divided by the batch's positive anchors, not by
# the batch, so batches of 2 make twice the updates of batches of 4 for the same work.
DEMO = {"mini_batch_size": "2", "epochs": "14"}
DEMO_DATA = {"num_classes": 1, "max_objects": 1}


#: what guessing scores on the example data (`make demo` prints it beside the best score)
CHANCE = "100 random boxes per image score about 0.02"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", type=Path, required=True, help="where to write the /opt/ml tree")
    parser.add_argument(
        "--content",
        choices=CONTENTS,
        default="recordio",
        help="recordio (im2rec), images (one JSON per image), coco (one instances file) or voc (XML per image)",
    )
    parser.add_argument("--train-images", type=int, default=64)
    parser.add_argument("--val-images", type=int, default=16)
    args = parser.parse_args(argv)
    hp = write_detection_tree(
        args.root,
        content=args.content,
        train_images=args.train_images,
        val_images=args.val_images,
        hyperparameters=DEMO,
        **DEMO_DATA,
    )
    print(f"Wrote an object-detection /opt/ml tree to {args.root} with hyperparameters {hp}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
