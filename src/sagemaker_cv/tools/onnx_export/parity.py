"""Parity: the exported file in onnxruntime against the model's own MXNet graph, on the same inputs.

The comparisons are pure functions of two arrays (unit-tested); `check` runs both runtimes.

* image-classification: max |dp| over the class probabilities.
* object-detection: per image, the rows scoring above 0.01 in either output, paired one to one
  (same class, score and box within tolerance); a row left unpaired is a difference. Pairing
  rather than comparing row i with row i: two detections whose scores differ by less than the
  runtimes' rounding may come out in either order.
* semantic-segmentation: the share of pixels whose most likely class is the same, and max |dp|.

TOLERANCES are what the measurements in docs/onnx.md allow, with a margin.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sagemaker_cv.algorithms.inference import DETECTIONS, PIXEL_PROBABILITIES, PROBABILITIES
from sagemaker_cv.contract.errors import AlgorithmError, ClientError

TOLERANCES = {
    "probability": 1e-4,  # classification max |dp|
    "score": 5e-4,  # detection score
    "box": 5e-4,  # detection corner, as a fraction of the image side (0.25 px at 512)
    "agreement": 0.999,  # segmentation: least share of pixels with the same most likely class
    "detection_threshold": 0.01,  # detections compared: those scoring above this
}


class ParityError(AlgorithmError):
    """The exported graph does not compute what the MXNet graph computes: a fault of the exporter
    (ours or MXNet's), not of the user's model. Exit code 3, so scripts can tell it apart."""

    exit_code = 3


@dataclass
class Comparison:
    input: str  # which input: "random 1", "image cat.jpg"
    measures: dict[str, float]
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        shown = ", ".join(f"{k} {_fmt(v)}" for k, v in self.measures.items())
        return f"{self.input}: {shown}" + (f" - {'; '.join(self.problems)}" if self.problems else "")


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) >= 1 else f"{value:.3g}"


def compare_probabilities(onnx_out: np.ndarray, mx_out: np.ndarray, name: str, tol=TOLERANCES) -> Comparison:
    diff = float(np.max(np.abs(onnx_out - mx_out))) if onnx_out.shape == mx_out.shape else np.inf
    result = Comparison(name, {"max |dp|": diff})
    if onnx_out.shape != mx_out.shape:
        result.problems.append(f"shape {onnx_out.shape} != MXNet's {mx_out.shape}")
    elif not diff <= tol["probability"]:
        result.problems.append(f"max |dp| {diff:.3g} > {tol['probability']}")
    return result


def compare_detections(onnx_out: np.ndarray, mx_out: np.ndarray, name: str, tol=TOLERANCES) -> Comparison:
    """Rows [class, score, xmin, ymin, xmax, ymax] per image (B, N, 6)."""
    if onnx_out.shape != mx_out.shape:
        return Comparison(name, {}, [f"shape {onnx_out.shape} != MXNet's {mx_out.shape}"])
    cut = tol["detection_threshold"]
    compared, unpaired, score_diff, box_diff = 0, [], 0.0, 0.0
    for b in range(mx_out.shape[0]):
        ours = [r for r in onnx_out[b] if r[1] > cut]
        theirs = [r for r in mx_out[b] if r[1] > cut]
        compared += len(theirs)
        free = list(range(len(ours)))
        for row in theirs:
            match = _pair(row, ours, free, tol)
            if match is None:
                unpaired.append(f"MXNet's {_row(row)} (image {b}) has no ONNX counterpart")
                continue
            free.remove(match)
            score_diff = max(score_diff, abs(float(ours[match][1] - row[1])))
            box_diff = max(box_diff, float(np.max(np.abs(ours[match][2:6] - row[2:6]))))
        unpaired += [f"ONNX's {_row(ours[i])} (image {b}) has no MXNet counterpart" for i in free]
    result = Comparison(name, {"rows": compared, "max |dscore|": score_diff, "max |dbox|": box_diff})
    if unpaired:
        result.problems.append(f"{len(unpaired)} unpaired row(s), e.g. {unpaired[0]}")
    return result


def _pair(row: np.ndarray, rows: list, free: list[int], tol) -> int | None:
    """The free row of the same class within tolerance, the closest in score."""
    fits = [
        i
        for i in free
        if rows[i][0] == row[0]
        and abs(rows[i][1] - row[1]) <= tol["score"]
        and np.max(np.abs(rows[i][2:6] - row[2:6])) <= tol["box"]
    ]
    return min(fits, key=lambda i: abs(rows[i][1] - row[1])) if fits else None


def _row(row: np.ndarray) -> str:
    return f"class {int(row[0])} score {row[1]:.4f} box [{', '.join(f'{v:.4f}' for v in row[2:6])}]"


def compare_segmentation(onnx_out: np.ndarray, mx_out: np.ndarray, name: str, tol=TOLERANCES) -> Comparison:
    """Class probabilities (B, C, H, W)."""
    if onnx_out.shape != mx_out.shape:
        return Comparison(name, {}, [f"shape {onnx_out.shape} != MXNet's {mx_out.shape}"])
    agreement = float(np.mean(onnx_out.argmax(axis=1) == mx_out.argmax(axis=1)))
    classes = len(np.unique(mx_out.argmax(axis=1)))
    diff = float(np.max(np.abs(onnx_out - mx_out)))
    result = Comparison(name, {"argmax agreement": agreement, "classes seen": classes, "max |dp|": diff})
    if not agreement >= tol["agreement"]:
        result.problems.append(f"argmax agreement {agreement:.5f} < {tol['agreement']}")
    return result


#: how an export is compared with its model, by the layout of the graph's output
COMPARE = {
    PROBABILITIES: compare_probabilities,
    DETECTIONS: compare_detections,
    PIXEL_PROBABILITIES: compare_segmentation,
}


# ---- inputs and the two runtimes -----------------------------------------------------------------------


def random_images(count: int, size: tuple[int, int], seed: int = 0) -> list[np.ndarray]:
    """(3, H, W) float32 pictures with structure (smooth colour fields and a few discs over noise),
    so a trained network answers with more than one class; pixels 0-255."""
    rng = np.random.default_rng(seed)
    height, width = size
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    images = []
    for _ in range(count):
        image = np.stack(
            [
                rng.uniform(0, 255) * (0.5 + 0.5 * np.sin(6 * (xx * rng.normal() + yy * rng.normal())))
                for _ in range(3)
            ]
        )
        for _ in range(3):
            cy, cx, r = rng.uniform(0, height), rng.uniform(0, width), rng.uniform(0.1, 0.3) * min(size)
            image[:, (yy * max(height, width) - cy) ** 2 + (xx * max(height, width) - cx) ** 2 < r * r] = (
                rng.uniform(0, 255, (3, 1))
            )
        images.append(np.clip(image + rng.normal(0, 8, image.shape), 0, 255).astype(np.float32))
    return images


def read_image(path: Path, size: tuple[int, int]) -> np.ndarray:
    """A picture file as (3, H, W) float32 RGB 0-255, resized to `size`."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            rgb = image.convert("RGB").resize((size[1], size[0]), Image.BILINEAR)
    except (OSError, UnidentifiedImageError) as exc:
        raise ClientError(f"--image {path}: cannot be read as a picture ({exc})") from None
    return np.asarray(rgb, dtype=np.float32).transpose(2, 0, 1).copy()


def session(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # warnings about the exporter's spare initializers are not the user's
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def check(path: Path, graph, images: list[tuple[str, np.ndarray]], dynamic_batch: bool) -> list[Comparison]:
    """Run the ONNX file and the MXNet graph on `images` ((name, (3, H, W)) pairs), one by one, or
    two at a time as well when the batch is dynamic."""
    runtime = session(path)
    compare = COMPARE[graph.output]
    batches = [([name], image[None]) for name, image in images]
    if dynamic_batch and len(images) > 1:
        pair = images[:2]
        batches.append(([f"{pair[0][0]} + {pair[1][0]} in one batch"], np.stack([p[1] for p in pair])))
    results = []
    for names, batch in batches:
        ours = runtime.run(None, {"data": batch})[0]
        results.append(compare(ours, graph.reference(batch), names[0]))
    return results
