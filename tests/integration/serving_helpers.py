"""A real `sagemaker-cv serve` on a free loopback port, and a plain HTTP client for it (http.client:
every header and byte of a request is the test's to choose)."""

from __future__ import annotations

import http.client
import io
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

SERVE = [sys.executable, "-m", "sagemaker_cv.cli", "serve"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Reply:
    status: int
    headers: dict
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


@dataclass
class Server:
    proc: subprocess.Popen
    port: int
    log: Path

    def request(self, method: str, path: str, body: bytes | None = None, headers=None, timeout=120) -> Reply:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
        finally:
            conn.close()

    def invoke(
        self, body: bytes, content_type: str | None = "image/jpeg", accept: str | None = None
    ) -> Reply:
        headers = {}
        if content_type is not None:
            headers["Content-Type"] = content_type
        if accept is not None:
            headers["Accept"] = accept
        return self.request("POST", "/invocations", body, headers)

    def ping(self, timeout=10) -> Reply:
        return self.request("GET", "/ping", timeout=timeout)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def workers(self) -> set[int]:
        """PIDs of the master's worker processes."""
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        return {int(p) for p in children.read_text().split()} if children.exists() else set()

    def stop(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def start(ml_root: Path, log: Path, *args: str, env: dict | None = None, wait: bool = True) -> Server:
    """`sagemaker-cv serve --ml-root ml_root` on a free port, its output in `log`; returns once
    /ping answers 200 (or, with wait=False, at once)."""
    port = free_port()
    environ = {**os.environ, "SAGEMAKER_MODEL_SERVER_WORKERS": "1", **(env or {})}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [*SERVE, "--ml-root", str(ml_root), "--host", "127.0.0.1", "--port", str(port), *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=environ,
        )
    server = Server(proc, port, log)
    if wait:
        wait_ready(server)
    return server


def wait_ready(server: Server, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise AssertionError(
                f"the server exited with {server.proc.returncode}:\n{server.output()[-3000:]}"
            )
        try:
            if server.ping(timeout=5).status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    server.stop()
    raise AssertionError(f"the server did not become ready in {timeout} s:\n{server.output()[-3000:]}")


def encoded(image: np.ndarray, ext: str = ".jpg") -> bytes:
    """An RGB (or grey) uint8 image encoded as OpenCV writes it."""
    pixels = image[:, :, ::-1] if image.ndim == 3 else image
    ok, buf = cv2.imencode(ext, np.ascontiguousarray(pixels))
    assert ok
    return buf.tobytes()


def picture(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth RGB picture (JPEG keeps it close), not square, so resizes and crops show."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, (height // 4 + 1, width // 4 + 1, 3), dtype=np.uint8)
    return cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)


def png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height pixels (and holds no pixel data)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def png_bytes_of(image: np.ndarray) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(image).save(out, format="PNG")
    return out.getvalue()


def record_class():
    """The SageMaker SDK's `Record` (record.proto, the parts the segmenter answers with) built by
    the protobuf library from a descriptor, as the SDK's generated record_pb2 would be."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    F = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(name="record.proto", package="aialgs.data", syntax="proto2")

    def message(name, *fields, options=None):
        m = file.message_type.add(name=name)
        for number, field_name, kind, label, type_name, packed in fields:
            f = m.field.add(name=field_name, number=number, type=kind, label=label)
            if type_name:
                f.type_name = type_name
            if packed:
                f.options.packed = True
        if options:
            m.options.map_entry = True
        return m

    rep, opt = F.LABEL_REPEATED, F.LABEL_OPTIONAL
    message(
        "Float32Tensor",
        (1, "values", F.TYPE_FLOAT, rep, None, True),
        (3, "shape", F.TYPE_UINT64, rep, None, True),
    )
    message(
        "Int32Tensor",
        (1, "values", F.TYPE_INT32, rep, None, True),
        (3, "shape", F.TYPE_UINT64, rep, None, True),
    )
    message(
        "Value",
        (2, "float32_tensor", F.TYPE_MESSAGE, opt, ".aialgs.data.Float32Tensor", False),
        (7, "int32_tensor", F.TYPE_MESSAGE, opt, ".aialgs.data.Int32Tensor", False),
    )
    record = message(
        "Record", (1, "features", F.TYPE_MESSAGE, rep, ".aialgs.data.Record.FeaturesEntry", False)
    )
    entry = record.nested_type.add(name="FeaturesEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=F.TYPE_STRING, label=opt)
    entry.field.add(name="value", number=2, type=F.TYPE_MESSAGE, label=opt, type_name=".aialgs.data.Value")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("aialgs.data.Record"))


def decode_record(body: bytes, scratch: Path) -> tuple[list[float], list[int]]:
    """(target values, shape) of a RecordIO-framed Record, unframed by MXNet's RecordIO reader."""
    import mxnet as mx

    path = scratch / "answer.rec"
    path.write_bytes(body)
    reader = mx.recordio.MXRecordIO(str(path), "r")
    payload = reader.read()
    assert reader.read() is None  # exactly one record
    reader.close()
    record = record_class()()
    record.ParseFromString(payload)
    return list(record.features["target"].float32_tensor.values), list(
        record.features["shape"].int32_tensor.values
    )
