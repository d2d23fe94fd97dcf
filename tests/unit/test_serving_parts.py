"""The serving decisions as pure functions: content negotiation, the settings from the environment,
worker and thread counts, GPU assignment and pinning, batch transform's defaults, request image
checks, and the segmenter's encodings.

Tier: fast (no server, no network).
"""

from __future__ import annotations

import io
import json
import struct
import sys

import cv2
import numpy as np
import pytest
from PIL import Image

from sagemaker_cv.algorithms.inference import MAX_PIXELS, image_size, jpeg_complete
from sagemaker_cv.contract.errors import ClientError
from sagemaker_cv.serving import server
from sagemaker_cv.serving.handler import Handler, Response
from sagemaker_cv.serving.negotiation import batch_default, choose, media_type
from sagemaker_cv.serving.server import gunicorn_config
from sagemaker_cv.serving.settings import (
    ServerSettings,
    gpu_for_worker,
    pinned_environment,
    thread_environment,
    visible_gpus,
)

DETECTION = ("application/json", "application/json;annotation=1")
SEGMENTATION = ("image/png", "application/x-recordio-protobuf", "application/x-protobuf")


@pytest.mark.parametrize(
    "accept,offers,expected",
    [
        (None, DETECTION, "application/json"),
        ("", DETECTION, "application/json"),
        ("*/*", SEGMENTATION, "image/png"),
        ("application/json", DETECTION, "application/json"),
        ("application/json;annotation=1", DETECTION, "application/json;annotation=1"),
        ("application/json; annotation=1", DETECTION, "application/json;annotation=1"),
        ("APPLICATION/JSON", DETECTION, "application/json"),
        ("application/*", SEGMENTATION, "application/x-recordio-protobuf"),
        ("application/x-protobuf", SEGMENTATION, "application/x-protobuf"),
        ("image/png;q=0.5, application/x-protobuf", SEGMENTATION, "application/x-protobuf"),
        ("text/html, */*;q=0.1", SEGMENTATION, "image/png"),
        ("image/png;q=0, */*", SEGMENTATION, "application/x-recordio-protobuf"),
        ("image/png", DETECTION, None),
        ("application/json;annotation=2", DETECTION, None),
        ("not a type", DETECTION, None),
    ],
)
def test_choose(accept, offers, expected):
    assert choose(accept, offers) == expected


def test_the_default_accept_setting_applies_only_without_a_preference():
    assert choose(None, DETECTION, "application/json;annotation=1") == "application/json;annotation=1"
    assert choose("*/*", DETECTION, "application/json;annotation=1") == "application/json;annotation=1"
    assert choose("application/json", DETECTION, "application/json;annotation=1") == "application/json"
    assert choose(None, DETECTION, "text/csv") == "application/json"  # not one of the offers


def test_media_type():
    assert media_type("Image/JPEG; charset=binary") == "image/jpeg"
    assert media_type(None) is None and media_type("jpeg") is None


def test_settings_defaults_and_worker_rule():
    s = ServerSettings.from_env({}, cores=2, gpus=0)
    assert (s.port, s.workers, s.timeout, s.max_request_bytes) == (8080, 2, 60, 6 << 20)
    assert s.max_response_bytes == 6 << 20 and s.graceful_timeout < 25
    assert ServerSettings.from_env({}, cores=8, gpus=4).workers == 4  # one per GPU
    env = {"SAGEMAKER_MODEL_SERVER_WORKERS": "3", "SAGEMAKER_BIND_TO_PORT": "9000"}
    assert ServerSettings.from_env(env, cores=2, gpus=4).workers == 3
    assert ServerSettings.from_env(env, cores=2, gpus=0, port=7000).port == 7000
    batch = ServerSettings.from_env(
        {"SAGEMAKER_BATCH": "true", "SAGEMAKER_MAX_PAYLOAD_IN_MB": "20"}, cores=2, gpus=0
    )
    assert batch.max_response_bytes is None and batch.max_request_bytes == 20 << 20
    assert batch.execution_parameters() == {
        "MaxConcurrentTransforms": batch.workers,
        "BatchStrategy": "SINGLE_RECORD",
        "MaxPayloadInMB": 20,
    }


def test_batch_transform_settings():
    # SDK v2's local mode writes "True"; SageMaker "true".
    for text in ("true", "True", " TRUE "):
        s = ServerSettings.from_env({"SAGEMAKER_BATCH": text}, cores=2, gpus=0)
        assert s.batch and s.timeout == 600 and s.graceful_timeout == 20, text
    assert ServerSettings.from_env({"SAGEMAKER_BATCH": "false"}, cores=2, gpus=0).timeout == 60
    # The user's own timeout wins in both.
    env = {"SAGEMAKER_BATCH": "true", "SAGEMAKER_MODEL_SERVER_TIMEOUT": "90"}
    assert ServerSettings.from_env(env, cores=2, gpus=0).timeout == 90
    # The job's own values go to /execution-parameters; 100 MB is batch transform's largest payload.
    env = {
        "SAGEMAKER_BATCH": "true",
        "SAGEMAKER_MAX_PAYLOAD_IN_MB": "100",
        "SAGEMAKER_BATCH_STRATEGY": "MULTI_RECORD",
        "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS": "1",
    }
    assert ServerSettings.from_env(env, cores=2, gpus=0).execution_parameters() == {
        "MaxConcurrentTransforms": 1,
        "BatchStrategy": "MULTI_RECORD",
        "MaxPayloadInMB": 100,
    }
    with pytest.raises(ClientError, match="SAGEMAKER_MAX_PAYLOAD_IN_MB='101'"):
        ServerSettings.from_env({"SAGEMAKER_MAX_PAYLOAD_IN_MB": "101"}, cores=2, gpus=0)


CLASSIFICATION = ("application/json", "application/jsonlines")


def test_batch_transform_answers_json_lines_where_json_is_the_default():
    assert batch_default(CLASSIFICATION) == "application/jsonlines"
    assert batch_default(DETECTION) is None  # one JSON document per image, as the built-in writes
    assert batch_default(SEGMENTATION) is None
    assert batch_default(("application/jsonlines", "application/json")) is None


class Offers:
    """A predictor as far as negotiation sees it."""

    content_types = ("image/jpeg",)

    def __init__(self, accepts):
        self.accepts = accepts

    def __call__(self, body, accept):
        return accept.encode()


@pytest.mark.parametrize(
    "handler, accept, expected",
    [
        (Handler(Offers(CLASSIFICATION)), None, "application/json"),
        (Handler(Offers(CLASSIFICATION), batch=True), None, "application/jsonlines"),
        (Handler(Offers(CLASSIFICATION), batch=True), "*/*", "application/jsonlines"),
        (Handler(Offers(CLASSIFICATION), batch=True), "application/json", "application/json"),
        (Handler(Offers(CLASSIFICATION), None, "application/json", batch=True), None, "application/json"),
        (Handler(Offers(DETECTION), batch=True), None, "application/json"),
        (Handler(Offers(SEGMENTATION), batch=True), None, "image/png"),
        (Handler(Offers(SEGMENTATION), batch=True), "text/csv", None),
    ],
)
def test_the_handlers_response_type(handler, accept, expected):
    assert handler.chosen(accept) == expected
    response = handler(b"x", "image/jpeg", accept)
    if expected is None:
        assert response.status == 406
    else:
        assert (response.status, response.content_type, response.body) == (200, expected, expected.encode())


class Sized(Offers):
    """Answers a PNG mask of 50 bytes, or class scores of 200 bytes in any other format."""

    def __call__(self, body, accept):
        return b"p" * 50 if accept == "image/png" else b"r" * 200


def test_a_response_over_the_real_time_limit_is_refused_and_names_a_smaller_answer():
    endpoint = Handler(Sized(SEGMENTATION), max_response_bytes=100)
    response = endpoint(b"x", "image/jpeg", "application/x-protobuf")
    assert response.status == 413 and response.content_type == "application/json"
    assert json.loads(response.body) == {
        "error": "the response would be 200 bytes (application/x-protobuf), more than the 100 a "
        "real-time endpoint returns; send a smaller image or ask for image/png or "
        "application/x-recordio-protobuf (Accept), or use batch transform"
    }
    assert endpoint(b"x", "image/jpeg", "image/png").status == 200  # 50 bytes fit
    assert endpoint(b"x", "image/jpeg", "application/x-recordio-protobuf").status == 413
    # Batch transform has no response cap.
    batch = Handler(Sized(SEGMENTATION), None, batch=True)
    assert batch(b"x", "image/jpeg", "application/x-protobuf") == Response(
        200, b"r" * 200, "application/x-protobuf"
    )


def test_every_bad_variable_is_named_at_once():
    env = {
        "SAGEMAKER_MODEL_SERVER_WORKERS": "many",
        "SAGEMAKER_BIND_TO_PORT": "70000",
        "SAGEMAKER_MAX_PAYLOAD_IN_MB": "0",
        "SAGEMAKER_BATCH": "yes",
        "SAGEMAKER_BATCH_STRATEGY": "ALL",
    }
    with pytest.raises(ClientError) as caught:
        ServerSettings.from_env(env, cores=2, gpus=0)
    text = str(caught.value)
    for name in env:
        assert name in text, text
    assert "expected an integer in [1, 65535]" in text


def test_threads_are_split_between_workers():
    def omp(cores, workers):
        return thread_environment(ServerSettings(workers=workers, cores=cores), {})["OMP_NUM_THREADS"]

    assert (omp(2, 1), omp(2, 2), omp(8, 1), omp(8, 2), omp(16, 8)) == ("1", "1", "4", "2", "1")
    kept = thread_environment(ServerSettings(workers=1, cores=8), {"OMP_NUM_THREADS": "3"})
    assert "OMP_NUM_THREADS" not in kept and kept["MKL_NUM_THREADS"] == "4"


def test_gpus_without_mxnet(tmp_path):
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "0,2"}) == 2
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": ""}) == 0
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "-1"}) == 0
    for name in ("0000:00:1e.0", "0000:00:1f.0"):
        (tmp_path / name).mkdir()
    assert visible_gpus({}, driver=tmp_path) == 2
    assert visible_gpus({}, driver=tmp_path / "absent") == 0


def test_a_new_worker_takes_a_free_gpu():
    assert gpu_for_worker(set(), 0) is None
    assert gpu_for_worker(set(), 4) == 0
    assert gpu_for_worker({0, 1, 3}, 4) == 2
    assert gpu_for_worker({0, 1}, 2) == 0  # more workers than devices: shared


def test_a_worker_is_pinned_to_its_own_gpu():
    assert pinned_environment(0, {}) == {"CUDA_VISIBLE_DEVICES": "0"}
    assert pinned_environment(3, {}) == {"CUDA_VISIBLE_DEVICES": "3"}
    # The host's own names for its devices, in their order: indices or UUIDs.
    assert pinned_environment(1, {"CUDA_VISIBLE_DEVICES": "2, 3"}) == {"CUDA_VISIBLE_DEVICES": "3"}
    uuids = {"CUDA_VISIBLE_DEVICES": "GPU-8a1f,GPU-77c2"}
    assert pinned_environment(0, uuids) == {"CUDA_VISIBLE_DEVICES": "GPU-8a1f"}
    assert pinned_environment(1, {"CUDA_VISIBLE_DEVICES": "-1,4,5"}) == {"CUDA_VISIBLE_DEVICES": "5"}


class Worker:
    """What gunicorn's hooks read of a worker."""

    def __init__(self, gpu=None):
        if gpu is not None:
            self.gpu = gpu
        self.started = False
        self.wsgi = type("App", (), {"slot": type("Slot", (), {"start": lambda _: self.mark()})()})()

    def mark(self):
        self.started = True


def test_the_hooks_give_each_worker_its_own_device(monkeypatch):
    """The master's pre_fork decision and the worker's post_worker_init, run as gunicorn runs them
    (on a CPU host: the GPUs are named in CUDA_VISIBLE_DEVICES, no device is touched)."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,6")
    monkeypatch.setattr(server, "_WORKER_GPU", {})
    master = type("Master", (), {"WORKERS": {}})()
    first, second, third = Worker(), Worker(), Worker()
    for pid, worker in enumerate((first, second), start=10):
        server._pre_fork(master, worker)
        master.WORKERS[pid] = worker
    assert (first.gpu, second.gpu) == (0, 1)
    del master.WORKERS[10]  # the first worker died: its replacement takes its device
    server._pre_fork(master, third)
    assert third.gpu == 0

    mx = type("mx", (), {"gpu": staticmethod(lambda i: f"gpu({i})"), "cpu": staticmethod(lambda: "cpu(0)")})
    server._post_worker_init(second)  # in the second worker's process, after the fork
    assert second.started and server.os.environ["CUDA_VISIBLE_DEVICES"] == "6"
    assert server.worker_context(mx) == "gpu(0)" and server._WORKER_GPU == {"device": "6"}


def test_a_cpu_worker_stays_on_the_cpu(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(server, "_WORKER_GPU", {})
    worker = Worker(gpu=None)
    worker.gpu = None
    server._post_worker_init(worker)
    mx = type("mx", (), {"gpu": staticmethod(lambda i: f"gpu({i})"), "cpu": staticmethod(lambda: "cpu(0)")})
    assert worker.started and server.worker_context(mx) == "cpu(0)"
    assert "CUDA_VISIBLE_DEVICES" not in server.os.environ


def test_gunicorn_config():
    config = gunicorn_config(ServerSettings(port=8081, workers=2, timeout=90), "0.0.0.0")
    assert config["bind"] == ["0.0.0.0:8081"] and config["workers"] == 2
    assert config["worker_class"] == "gthread" and config["preload_app"] is False
    assert config["timeout"] == 90 and config["graceful_timeout"] == 20


def test_the_server_master_does_not_import_mxnet():
    import subprocess

    code = "import sys; import sagemaker_cv.cli, sagemaker_cv.serving.server, sagemaker_cv.serving.app, sagemaker_cv.algorithms.trained; print('mxnet' in sys.modules)"
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
    )


# ---- request images ----------------------------------------------------------------------------------


def jpeg(image: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", image)[1].tobytes()


def png_header(width: int, height: int) -> bytes:
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + header + chunk(b"IEND", b"")


def test_image_checks():
    picture = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    assert image_size(jpeg(picture)) == (30, 20)
    for body, words in [
        (b"", "empty"),
        (b"GIF89a nonsense", "not an image"),
        (jpeg(picture)[:-200], "truncated"),  # cut in the compressed data
        (png_header(8193, 4096), "8193x4096 pixels"),
        (png_header(100_000, 100_000), "more pixels than Pillow opens"),
    ]:
        with pytest.raises(ClientError, match=words):
            image_size(body)
    side = int(MAX_PIXELS**0.5)
    assert image_size(png_header(side, side)) == (side, side)


def test_a_jpeg_cut_after_its_exif_thumbnail_is_truncated():
    """The thumbnail's own end marker inside APP1 must not pass for the image's."""
    thumbnail = jpeg(np.zeros((8, 8, 3), np.uint8))
    app1 = b"Exif\0\0" + thumbnail
    main = jpeg(np.full((16, 16, 3), 50, np.uint8))
    with_exif = main[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + main[2:]
    assert jpeg_complete(with_exif)
    assert not jpeg_complete(with_exif[: len(with_exif) - 60])


# ---- the segmenter's encodings ------------------------------------------------------------------------


def test_mask_png_holds_the_class_indices():
    from sagemaker_cv.algorithms.segmentation.predict import indexed_png

    mask = np.arange(12, dtype=np.uint8).reshape(3, 4) % 5
    with Image.open(io.BytesIO(indexed_png(mask))) as image:
        assert image.mode == "P" and image.size == (4, 3)
        np.testing.assert_array_equal(np.asarray(image), mask)
        assert image.getpalette()[3:6] == [128, 0, 0]  # VOC's colour of class 1


def test_the_record_decodes_with_protobuf():
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parents[1] / "integration"))
    from serving_helpers import record_class

    from sagemaker_cv.algorithms.segmentation.predict import RECORDIO_MAGIC, recordio_record

    probabilities = np.random.default_rng(0).random((1, 3, 5, 7)).astype(np.float32)
    body = recordio_record(probabilities)
    magic, length = struct.unpack("<II", body[:8])
    assert magic == RECORDIO_MAGIC and len(body) == 8 + length + (-length % 4)
    record = record_class()()
    record.ParseFromString(body[8 : 8 + length])
    assert list(record.features["shape"].int32_tensor.values) == [1, 3, 5, 7]
    np.testing.assert_array_equal(record.features["target"].float32_tensor.values, probabilities.ravel())


def test_a_batch_server_takes_the_jobs_payload_limit_and_answers_json_lines():
    """The WSGI application as a transform job configures it (no HTTP server: its route())."""
    from sagemaker_cv.serving.app import Application, ModelSlot

    settings = ServerSettings.from_env(
        {"SAGEMAKER_BATCH": "true", "SAGEMAKER_MAX_PAYLOAD_IN_MB": "1"}, cores=2, gpus=0
    )
    slot = ModelSlot(lambda: Offers(CLASSIFICATION), lambda exc: None)
    slot.start()
    app = Application(slot, settings)

    def post(size: int):
        environ = {
            "PATH_INFO": "/invocations",
            "REQUEST_METHOD": "POST",
            "CONTENT_TYPE": "image/jpeg",
            "CONTENT_LENGTH": str(size),
            "wsgi.input": io.BytesIO(b"x" * size),
        }
        return app.route(environ)[0]

    refused = post((1 << 20) + 1)
    assert refused.status == 413 and "1,048,577 bytes, more than 1 MiB" in refused.body.decode()
    answered = post(1 << 20)
    assert (answered.status, answered.content_type) == (200, "application/jsonlines")
    params = app.route({"PATH_INFO": "/execution-parameters", "REQUEST_METHOD": "GET"})[0]
    assert (
        params.body
        == b'{"MaxConcurrentTransforms": 2, "BatchStrategy": "SINGLE_RECORD", "MaxPayloadInMB": 1}'
    )


def test_a_worker_keeps_a_request_thread_for_ping():
    """gunicorn gives /ping the same request threads as the invocations: a worker holds at most
    threads - 1 of them, and answers one more at once (503) instead of taking the last thread."""
    import threading

    from sagemaker_cv.serving.app import Application, ModelSlot

    release = threading.Event()
    entered = threading.Semaphore(0)

    class Blocking(Offers):
        def __call__(self, body, accept):
            entered.release()
            release.wait(10)
            return super().__call__(body, accept)

    slot = ModelSlot(lambda: Blocking(CLASSIFICATION), lambda exc: None)
    slot.start()
    app = Application(slot, ServerSettings(threads=4))

    def route(path, method="GET"):
        environ = {"PATH_INFO": path, "REQUEST_METHOD": method, "CONTENT_TYPE": "image/jpeg"}
        environ.update({"CONTENT_LENGTH": "1", "wsgi.input": io.BytesIO(b"x")})
        return app.route(environ)[0]

    answers = []
    held = [threading.Thread(target=lambda: answers.append(route("/invocations", "POST"))) for _ in range(3)]
    for thread in held:
        thread.start()
    for _ in held:
        assert entered.acquire(timeout=10)  # three invocations in the predictor: threads - 1
    refused = route("/invocations", "POST")
    assert refused.status == 503 and "busy: this worker holds 3 invocations already" in refused.body.decode()
    assert "retry" in refused.body.decode()
    assert route("/ping").status == 200
    release.set()
    for thread in held:
        thread.join(10)
    assert [a.status for a in answers] == [200, 200, 200]
    assert route("/invocations", "POST").status == 200  # the places are free again
