"""The server under load and under garbage: hundreds of requests from a few concurrent clients with
zero 5xx, and random bodies and headers that never get a 5xx or end a worker.

Tier: slow (hundreds of requests against each algorithm's reference model).
"""

from __future__ import annotations

import json
import random
import string
import threading
import time
from collections import Counter

import pytest
from serving_helpers import encoded, picture, png_bytes_of, start

ALGORITHMS = ("image-classification", "object-detection", "semantic-segmentation")
ACCEPTS = {
    "image-classification": ("application/json", "application/jsonlines"),
    "object-detection": ("application/json", "application/json;annotation=1"),
    "semantic-segmentation": ("image/png", "application/x-recordio-protobuf"),
}


@pytest.fixture(scope="module")
def two_workers(trained, tmp_path_factory):
    servers = {}

    def get(algorithm: str):
        if algorithm not in servers:
            log = tmp_path_factory.mktemp("serve") / f"{algorithm}.log"
            servers[algorithm] = start(
                trained(algorithm).root, log, env={"SAGEMAKER_MODEL_SERVER_WORKERS": "2"}
            )
        return servers[algorithm]

    yield get
    for server in servers.values():
        assert server.stop() == 0, server.output()[-2000:]


def concurrently(requests, clients: int = 4) -> list[int]:
    statuses: list[int] = []
    lock = threading.Lock()
    queue = list(requests)

    def client():
        while True:
            with lock:
                if not queue:
                    return
                send = queue.pop()
            status = send()
            with lock:
                statuses.append(status)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return statuses


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_hundreds_of_requests_four_at_a_time(two_workers, algorithm):
    server = two_workers(algorithm)
    workers = server.workers()
    count = 60 if algorithm == "object-detection" else 300  # SSD takes most of a second per image here
    bodies = [(encoded(picture(40 + i % 23, 50 + i % 31, seed=i)), "image/jpeg") for i in range(8)]
    bodies.append((png_bytes_of(picture(33, 47)), "image/png"))
    rng = random.Random(0)

    def request(i):
        body, kind = bodies[i % len(bodies)]
        return lambda: server.invoke(body, kind, rng.choice(ACCEPTS[algorithm])).status

    statuses = Counter(concurrently([request(i) for i in range(count)]))
    assert statuses == {200: count}, (statuses, server.output()[-3000:])
    assert server.workers() == workers and server.ping().status == 200


GOOD_TYPES = ("image/jpeg", "image/png", "application/x-image", "application/octet-stream")
ODD_TYPES = (
    "text/csv",
    "application/json",
    "image/*",
    "",
    "multipart/form-data; boundary=x",
    "image/jpeg; q=0",
)


def garbage(rng: random.Random, image: bytes) -> bytes:
    kind = rng.randrange(5)
    if kind == 0:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(0, 2000)))
    if kind == 1:
        return image[: rng.randrange(len(image))]  # truncated
    if kind == 2:  # a few bytes changed anywhere, the header included
        damaged = bytearray(image)
        for _ in range(rng.randrange(1, 20)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        return bytes(damaged)
    if kind == 3:
        return image + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 500)))
    return image[:20] + bytes(rng.randrange(256) for _ in range(rng.randrange(0, 300)))


def text(
    rng: random.Random, size: int, alphabet: str = string.ascii_letters + string.digits + "/;=*,.- "
) -> str:
    return "".join(rng.choice(alphabet) for _ in range(rng.randrange(size)))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_random_bytes_and_headers_never_get_a_5xx_nor_end_a_worker(two_workers, algorithm):
    server = two_workers(algorithm)
    workers = server.workers()
    rng = random.Random(ALGORITHMS.index(algorithm))
    images = [encoded(picture(48, 64, seed=s)) for s in range(3)] + [png_bytes_of(picture(40, 40))]
    count = 120 if algorithm == "object-detection" else 300

    def request(i):
        body = garbage(rng, rng.choice(images))
        content_type = rng.choice(GOOD_TYPES * 3 + ODD_TYPES + (text(rng, 40),))
        accept = rng.choice((*ACCEPTS[algorithm], None, "*/*", text(rng, 40), "image/png;q=0.1, */*;q=0.2"))
        headers = {"Content-Type": content_type} if content_type else {}
        if accept is not None:
            headers["Accept"] = accept
        method, path = (
            ("POST", "/invocations")
            if i % 10
            else (rng.choice(("GET", "PUT", "POST")), text(rng, 20, string.ascii_letters + "/-."))
        )
        return lambda: (
            server.request(method, path if path.startswith("/") else "/" + path, body, headers).status
        )

    statuses = Counter(concurrently([request(i) for i in range(count)]))
    assert not [s for s in statuses if s >= 500], (statuses, server.output()[-3000:])
    assert server.workers() == workers and server.ping().status == 200
    assert statuses[400] and statuses[415]  # the garbage reached the decoders and the negotiation


def test_ping_answers_while_more_invocations_than_threads_are_in_flight(trained, tmp_path):
    """One worker, more detections sent at once than it has request threads (each takes most of a
    second on two cores): the worker takes as many as leave a thread for /ping, refuses the rest
    at once (503, to retry), and /ping answers within SageMaker's 2 s all along."""
    from sagemaker_cv.serving.settings import THREADS

    server = start(trained("object-detection").root, tmp_path / "serve.log")
    body = encoded(picture(300, 300, seed=5))
    replies = []
    clients = [
        threading.Thread(target=lambda: replies.append(server.invoke(body))) for _ in range(THREADS + 4)
    ]
    try:
        for client in clients:
            client.start()
        time.sleep(0.3)  # every request is in the worker: the threads are taken
        latencies = []
        while any(client.is_alive() for client in clients):
            started = time.perf_counter()
            assert server.ping(timeout=10).status == 200
            latencies.append(time.perf_counter() - started)
            time.sleep(0.1)
        for client in clients:
            client.join()
        assert len(latencies) > 3 and max(latencies) < 2, latencies
        statuses = Counter(reply.status for reply in replies)
        assert set(statuses) == {200, 503} and statuses[200] >= THREADS - 1, statuses
        refused = next(reply for reply in replies if reply.status == 503)
        assert "retry" in json.loads(refused.body)["error"], refused.body
        assert server.invoke(body).status == 200  # and it goes on serving
    finally:
        assert server.stop() == 0, server.output()[-2000:]
