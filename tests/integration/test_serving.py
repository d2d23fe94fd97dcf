"""The real server on loopback, for each algorithm's reference model: every response format, and
a served prediction equal to the exported graph run directly on the training's validation input.

Tier: fast (a server per algorithm on the session's reference models; a few seconds each).
"""

from __future__ import annotations

import json
import threading
import time

import mxnet as mx
import numpy as np
import pytest
from serving_helpers import encoded, picture, png_bytes_of, start

pytestmark = pytest.mark.fast


@pytest.fixture(scope="module")
def served(trained, tmp_path_factory):
    """Factory: algorithm -> a running server of its reference model (stopped with the module)."""
    servers = {}

    def get(algorithm: str):
        if algorithm not in servers:
            log = tmp_path_factory.mktemp("serve") / f"{algorithm}.log"
            servers[algorithm] = start(trained(algorithm).root, log)
        return servers[algorithm]

    yield get
    for server in servers.values():
        assert server.stop() == 0, server.output()[-2000:]


def exported(model_dir, prefix: str, epoch: int, shape):
    """The model's exported graph bound by MXNet's Module (not the server's code path)."""
    sym, args, aux = mx.model.load_checkpoint(str(model_dir / prefix), epoch)
    module = mx.mod.Module(sym, data_names=["data"], label_names=None, context=mx.cpu())
    module.bind(data_shapes=[("data", shape)], for_training=False)
    module.set_params(args, aux)
    return module


def run(module, x: np.ndarray) -> np.ndarray:
    module.forward(mx.io.DataBatch([mx.nd.array(x)]), is_train=False)
    return module.get_outputs()[0].asnumpy()


def one_record(path, body: bytes, label) -> None:
    writer = mx.recordio.MXIndexedRecordIO(str(path.with_suffix(".idx")), str(path), "w")
    writer.write_idx(0, mx.recordio.pack(mx.recordio.IRHeader(0, label, 0, 0), body))
    writer.close()


# ---- image classification ---------------------------------------------------------------------------


def test_classification_formats_and_parity(served, trained, tmp_path):
    from sagemaker_cv.algorithms.classification import data
    from sagemaker_cv.algorithms.classification.records import LabelRules, PreparedRecords

    server, model_dir = served("image-classification"), trained("image-classification").model_dir
    # The job had no resize; its images are 32 px: validation crops 24 px from 32 px, and serving
    # resizes every image to a shorter side of 32 first (model-shapes.json records it).
    shapes = json.loads((model_dir / "model-shapes.json").read_text())
    assert shapes == [{"shape": [8, 3, 24, 24], "name": "data", "resize": 32}]
    body = encoded(picture(30, 40))  # resized to 32 x 42, then the central 24 x 24
    default = server.invoke(body)
    assert default.status == 200 and default.content_type == "application/json"
    probabilities = json.loads(default.body)
    assert len(probabilities) == 3 and abs(sum(probabilities) - 1) < 1e-5
    lines = server.invoke(body, "application/x-image", "application/jsonlines")
    assert lines.status == 200 and lines.content_type == "application/jsonlines"
    assert lines.body.endswith(b"\n") and json.loads(lines.body) == {"prediction": probabilities}
    assert json.loads(server.invoke(png_bytes_of(picture(30, 40)), "image/png").body)
    assert json.loads(server.invoke(body, "application/octet-stream").body) == probabilities

    module = exported(model_dir, "image-classification", 1, (1, 3, 24, 24))

    def validated(image: bytes, resize: int | None) -> np.ndarray:
        """The training's validation reader (ImageRecordIter) on `image`, then the exported graph."""
        rec = tmp_path / "one.rec"
        one_record(rec, image, 0.0)
        rules = LabelRules(3, False, (3, 24, 24), resize=resize)
        prepared = PreparedRecords("validation", "one.rec", (rec,), str(rec), rec.with_suffix(".idx"), 1, [])
        x = next(iter(data.record_iter(prepared, batch_size=1, rules=rules, train=False))).data[0].asnumpy()
        return run(module, x)[0]

    # A picture of another size: validation's transform with the recorded resize, larger than the crop.
    np.testing.assert_allclose(probabilities, validated(body, 32), rtol=1e-5, atol=1e-7)
    # An image of the job's own validation channel, served, is scored as the job's validation scored it.
    rec = next((trained("image-classification").root / "input/data/validation").glob("*.rec"))
    reader = mx.recordio.MXRecordIO(str(rec), "r")
    _, own = mx.recordio.unpack(reader.read())
    reader.close()
    served_own = json.loads(server.invoke(own).body)
    np.testing.assert_allclose(served_own, validated(own, None), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
    "height,width,resize", [(30, 40, 24), (41, 29, 24), (24, 24, 24), (50, 37, None), (30, 40, 32)]
)
def test_classification_crop_is_the_validation_readers(tmp_path, height, width, resize):
    """validation_crop gives ImageRecordIter's pixels exactly (no augmentation, resize, centre crop)."""
    from sagemaker_cv.algorithms.classification import data
    from sagemaker_cv.algorithms.classification.predict import validation_crop
    from sagemaker_cv.algorithms.classification.records import LabelRules, PreparedRecords

    body = encoded(picture(height, width, seed=3))
    rec = tmp_path / "one.rec"
    one_record(rec, body, 0.0)
    rules = LabelRules(2, False, (3, 24, 24), resize=resize)
    prepared = PreparedRecords("validation", "one.rec", (rec,), str(rec), rec.with_suffix(".idx"), 1, [])
    batch = next(iter(data.record_iter(prepared, batch_size=1, rules=rules, train=False)))
    ours = validation_crop(cv2_decode(body)[:, :, ::-1], (3, 24, 24), resize)
    np.testing.assert_array_equal(batch.data[0].asnumpy()[0], ours.transpose(2, 0, 1))


def cv2_decode(body: bytes) -> np.ndarray:
    import cv2

    return cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)


# ---- object detection -------------------------------------------------------------------------------


def test_detection_formats_and_parity(served, trained, tmp_path):
    from sagemaker_cv.algorithms.detection import data
    from sagemaker_cv.algorithms.detection.records import PreparedDetection

    server, model_dir = served("object-detection"), trained("object-detection").model_dir
    height, width = 150, 220
    body = encoded(picture(height, width, seed=1))
    reply = server.invoke(body)
    assert reply.status == 200 and reply.content_type == "application/json"
    rows = np.array(json.loads(reply.body)["prediction"])
    assert rows.ndim == 2 and rows.shape[1] == 6 and (rows[:, 0] >= 0).all()
    assert ((rows[:, 2:] >= 0) & (rows[:, 2:] <= 1)).all() and (np.diff(rows[:, 1]) <= 0).all()

    # The training's validation reader (ImageDetRecordIter: squashed to 300 x 300) and the exported graph.
    rec = tmp_path / "one.rec"
    one_record(rec, body, np.array([2, 5, 0, 0.1, 0.1, 0.5, 0.5], dtype=np.float32))
    prepared = PreparedDetection("validation", "one.rec", rec, 1)
    it = data.det_iter(prepared, batch_size=1, image_shape=300, label_width=12, train=False)
    x = next(iter(it)).data[0].asnumpy()
    expected = run(exported(model_dir, "model_algo_1", 0, (1, 3, 300, 300)), x)[0]
    expected = expected[expected[:, 0] >= 0]
    # Module's executor and the server's cached graph round differently (seen: 1.7e-5 on one corner);
    # a transform that differed by a pixel would move corners by ~1e-3.
    np.testing.assert_allclose(rows, expected, rtol=1e-4, atol=1e-4)

    annotated = server.invoke(body, accept="application/json;annotation=1")
    assert annotated.status == 200 and annotated.content_type == "application/json;annotation=1"
    form = json.loads(annotated.body)
    assert form["image_size"] == [{"width": width, "height": height, "depth": 3}]
    assert len(form["annotations"]) == len(rows)
    first, row = form["annotations"][0], rows[0]
    assert first["class_id"] == int(row[0]) and first["score"] == pytest.approx(row[1])
    assert (first["left"], first["top"]) == (round(row[2] * width), round(row[3] * height))
    assert first["left"] + first["width"] == round(row[4] * width)


def test_detection_resize_is_the_validation_readers(tmp_path):
    from sagemaker_cv.algorithms.detection import data
    from sagemaker_cv.algorithms.detection.predict import validation_resize
    from sagemaker_cv.algorithms.detection.records import PreparedDetection

    body = encoded(picture(77, 131, seed=2))
    rec = tmp_path / "one.rec"
    one_record(rec, body, np.array([2, 5, 1, 0.2, 0.2, 0.6, 0.9], dtype=np.float32))
    it = data.det_iter(
        PreparedDetection("v", "one.rec", rec, 1), batch_size=1, image_shape=300, label_width=7, train=False
    )
    ours = validation_resize(cv2_decode(body), 300)[:, :, ::-1].transpose(2, 0, 1)
    np.testing.assert_array_equal(next(iter(it)).data[0].asnumpy()[0], ours)


# ---- semantic segmentation ----------------------------------------------------------------------------


def test_segmentation_formats_and_parity(served, trained, tmp_path):
    from PIL import Image
    from serving_helpers import decode_record

    from sagemaker_cv.algorithms.segmentation.dataset import decode_image

    server, model_dir = served("semantic-segmentation"), trained("semantic-segmentation").model_dir
    height, width = 37, 53
    body = encoded(picture(height, width, seed=4))
    reply = server.invoke(body)
    assert reply.status == 200 and reply.content_type == "image/png"
    with Image.open(__import__("io").BytesIO(reply.body)) as mask_image:
        assert mask_image.mode == "P" and mask_image.size == (width, height)
        mask = np.asarray(mask_image)

    # The whole-image validation input (decode_image) and the exported any-size graph.
    x = decode_image(body, "test").transpose(2, 0, 1)[None].astype(np.float32)
    expected = run(exported(model_dir, "model_algo-1", 0, x.shape), x)
    np.testing.assert_array_equal(mask, expected[0].argmax(axis=0))

    for accept in ("application/x-recordio-protobuf", "application/x-protobuf"):
        record = server.invoke(body, accept=accept)
        assert record.status == 200 and record.content_type == accept
        values, shape = decode_record(record.body, tmp_path)
        assert shape == [1, 3, height, width]
        np.testing.assert_allclose(np.reshape(values, shape), expected, rtol=1e-5, atol=1e-6)


# ---- the HTTP contract ---------------------------------------------------------------------------------


def test_ping_and_execution_parameters(served):
    server = served("image-classification")
    ping = server.ping()
    assert (ping.status, ping.body) == (200, b"")
    assert server.request("HEAD", "/ping").status == 200
    params = server.request("GET", "/execution-parameters")
    assert params.status == 200
    assert json.loads(params.body) == {
        "MaxConcurrentTransforms": 1,
        "BatchStrategy": "SINGLE_RECORD",
        "MaxPayloadInMB": 6,
    }


def error_of(reply) -> str:
    assert reply.content_type == "application/json" and reply.body.count(b"\n") == 1, reply.body
    return json.loads(reply.body)["error"]


def test_every_bad_request_gets_its_code_and_a_reason(served):
    from serving_helpers import png_declaring

    server = served("image-classification")
    good = encoded(picture(30, 40))
    cases = [
        (server.invoke(good, "text/csv"), 415, "image/jpeg, image/png, application/x-image"),
        (server.invoke(good, None), 415, "no Content-Type"),
        (server.invoke(good, accept="image/png"), 406, "application/json, application/jsonlines"),
        (server.invoke(good, accept="application/json;annotation=1"), 406, "answers"),
        (server.invoke(b""), 400, "empty"),
        (server.invoke(b"not an image at all"), 400, "not an image"),
        (server.invoke(good[: len(good) // 2]), 400, "truncated"),
        (server.invoke(png_declaring(8000, 6000), "image/png"), 400, "8000x6000 pixels"),
        (server.request("GET", "/invocations"), 405, "expected POST"),
        (server.request("POST", "/ping"), 405, "expected GET, HEAD"),
        (server.request("GET", "/nowhere"), 404, "/ping, /invocations"),
    ]
    for reply, status, words in cases:
        assert reply.status == status, (status, reply.body)
        assert words in error_of(reply), (status, reply.body)
    assert served("image-classification").ping().status == 200  # still serving


def test_a_body_over_the_limit_is_refused_before_it_is_read(served):
    import http.client

    server = served("image-classification")
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    # Headers only: a server that waited for the 7 MiB it was promised would time out here.
    conn.putrequest("POST", "/invocations")
    conn.putheader("Content-Type", "image/jpeg")
    conn.putheader("Content-Length", str(7 << 20))
    conn.endheaders()
    reply = conn.getresponse()
    assert reply.status == 413
    assert "7,340,032 bytes, more than 6 MiB" in json.loads(reply.read())["error"]
    conn.close()
    assert server.ping().status == 200


def test_ping_answers_while_every_worker_predicts(served):
    """One worker, busy with detections (each takes most of a second on two cores): /ping still
    answers at once, from another of the worker's threads."""
    server = served("object-detection")
    body = encoded(picture(300, 300, seed=5))
    done = []
    threads = [threading.Thread(target=lambda: done.append(server.invoke(body).status)) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    latencies = []
    while any(t.is_alive() for t in threads):
        started = time.perf_counter()
        assert server.ping().status == 200
        latencies.append(time.perf_counter() - started)
        time.sleep(0.05)
    for t in threads:
        t.join()
    assert done == [200, 200, 200] and latencies
    assert max(latencies) < 0.5, latencies


def test_sigterm_finishes_the_requests_in_flight_and_exits(trained, tmp_path):
    server = start(trained("object-detection").root, tmp_path / "serve.log")
    body = encoded(picture(200, 200))
    results = []
    threads = [threading.Thread(target=lambda: results.append(server.invoke(body).status)) for _ in range(2)]
    for t in threads:
        t.start()
    time.sleep(0.4)  # both requests are in the worker now
    started = time.monotonic()
    code = server.stop(timeout=25)
    for t in threads:
        t.join()
    assert code == 0 and time.monotonic() - started < 25, server.output()[-2000:]
    assert results == [200, 200], server.output()[-2000:]
    with pytest.raises(OSError):
        server.ping(timeout=2)
