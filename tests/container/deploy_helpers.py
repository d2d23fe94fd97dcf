"""Helpers of the tests that serve from the image: request images, a plain HTTP client, checks of
each algorithm's answer formats, and `predict` run in the image (a uniquely named module: tests/
has no packages)."""

from __future__ import annotations

import http.client
import io
import json
import socket
import subprocess
import time
from pathlib import Path

import cv2
import numpy as np
from container_helpers import docker

ALGORITHMS = ("image-classification", "object-detection", "semantic-segmentation")
#: every response format of each algorithm, the real-time default first
ACCEPTS = {
    "image-classification": ("application/json", "application/jsonlines"),
    "object-detection": ("application/json", "application/json;annotation=1"),
    "semantic-segmentation": ("image/png", "application/x-recordio-protobuf", "application/x-protobuf"),
}
NUM_CLASSES = 3  # every reference model's
ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"  # local mode never assumes it
#: SDK telemetry off: local mode would try to reach AWS with every call
SDK_CONFIG = {"SchemaVersion": "1.0", "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}}}
#: the sizes (height, width) of the request images, none square, so resizes and crops show
SIZES = {"street.jpg": (45, 61), "park.png": (52, 38)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def picture(height: int, width: int, seed: int) -> np.ndarray:
    """A smooth BGR picture (JPEG keeps it close)."""
    noise = np.random.default_rng(seed).integers(0, 256, (height // 4 + 1, width // 4 + 1, 3), dtype=np.uint8)
    return cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)


def request_images(folder: Path) -> Path:
    """A folder of a JPEG and a PNG (a batch transform's input: one request per file)."""
    folder.mkdir(parents=True, exist_ok=True)
    for seed, (name, (height, width)) in enumerate(SIZES.items()):
        ok, encoded = cv2.imencode(Path(name).suffix, picture(height, width, seed))
        assert ok
        (folder / name).write_bytes(encoded.tobytes())
    return folder


def request(port: int, method: str, path: str, body: bytes | None = None, headers=None, timeout=120):
    """(status, headers with lower-case names, body) of one request to 127.0.0.1:port."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        reply = conn.getresponse()
        return reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read()
    finally:
        conn.close()


def wait_ready(port: int, container: str, timeout: float = 180) -> float:
    """Seconds until /ping answers 200; fails with the container's log if it exits or never does."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            if request(port, "GET", "/ping", timeout=5)[0] == 200:
                return time.monotonic() - start
        except OSError:
            pass
        state = docker("inspect", "--format", "{{.State.Running}}", container).stdout.strip()
        assert state == "true", f"the server ended:\n{docker('logs', container).stdout[-4000:]}"
        time.sleep(0.2)
    raise AssertionError(f"no 200 from /ping in {timeout} s:\n{docker('logs', container).stdout[-4000:]}")


def check_answer(algorithm: str, accept: str, body: bytes, height: int, width: int):
    """The answer in the built-in's format for an image of height x width; its numbers (class
    probabilities, detection rows, probabilities (1, C, H, W) or the class mask)."""
    if algorithm == "image-classification":
        values = json.loads(body)
        if accept == "application/jsonlines":
            assert body.endswith(b"\n") and body.count(b"\n") == 1, body
            values = values["prediction"]
        assert len(values) == NUM_CLASSES and abs(sum(values) - 1) < 1e-5, values
        return np.array(values)
    if algorithm == "object-detection":
        answer = json.loads(body)
        if accept == "application/json;annotation=1":
            assert answer["image_size"] == [{"width": width, "height": height, "depth": 3}], answer
            rows = [
                [a["class_id"], a["score"], a["left"], a["top"], a["width"], a["height"]]
                for a in answer["annotations"]
            ]
            return np.array(rows)
        rows = np.array(answer["prediction"])
        assert (
            rows.ndim == 2
            and rows.shape[1] == 6
            and (rows[:, 0] >= 0).all()
            and (rows[:, 0] < NUM_CLASSES).all()
        )
        assert ((rows[:, 2:] >= 0) & (rows[:, 2:] <= 1)).all() and (np.diff(rows[:, 1]) <= 0).all()
        return rows
    if accept == "image/png":
        from PIL import Image

        with Image.open(io.BytesIO(body)) as mask:
            assert mask.mode == "P" and mask.size == (width, height), (mask.mode, mask.size)
            return np.asarray(mask)
    values, shape = read_record(body)
    assert shape == [1, NUM_CLASSES, height, width], shape
    probabilities = np.reshape(values, shape)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, atol=1e-4)
    return probabilities


def read_record(body: bytes) -> tuple[list[float], list[int]]:
    """(target values, shape) of a RecordIO-framed Record, read as AWS's notebook reads it: the SDK's
    own RecordIO reader and record_pb2."""
    from sagemaker.amazon.common import read_recordio
    from sagemaker.amazon.record_pb2 import Record

    payloads = list(read_recordio(io.BytesIO(body)))
    assert len(payloads) == 1, len(payloads)
    record = Record()
    record.ParseFromString(payloads[0])
    return list(record.features["target"].float32_tensor.values), list(
        record.features["shape"].int32_tensor.values
    )


def predict_in_image(
    image: str, archive: Path, images: Path, output: Path, *args: str
) -> subprocess.CompletedProcess:
    """`sagemaker-cv predict` in the image, offline (--network none), on a model.tar.gz."""
    output.mkdir(parents=True, exist_ok=True)
    return docker(
        "run", "--rm", "--network", "none",
        "-v", f"{archive.parent}:/model:ro", "-v", f"{images}:/input:ro", "-v", f"{output}:/output",
        image, "predict", "--model", f"/model/{archive.name}", "--input", "/input", "--output", "/output", *args,
        timeout=300,
    )  # fmt: skip


def files_of(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }
