"""Serving throughput: images/s of `sagemaker-cv serve` (HTTP requests of encoded images, keep-alive
connections, concurrency 1 and 4) over a bare `net(x)` loop on the same images, decoded and
transformed once beforehand, in one process; p50/p99 latency; /ping p99 while every worker is busy.

Each algorithm at its default size, on a model of random weights (a trained one runs the same graph):
classification ResNet-50 at 224, detection SSD at 300 (the built-in's default VGG-16 base), segmentation
FCN ResNet-50 on 480 x 360 images. Where the ratio falls short, `--profile` splits a request's time
between decoding and the transform, the network and encoding (in-process, same predictor).

    python bench/bench_serve.py [--algorithm A ...] [--workers 1 2] [--requests 24] [--profile]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np

SIZES = {
    "image-classification": (224, 224),
    "object-detection": (300, 300),
    "semantic-segmentation": (360, 480),
}


def write_model(algorithm: str, directory: Path, detection_base: str) -> None:
    """A model directory as a job writes it, with random weights."""
    import mxnet as mx

    from sagemaker_cv.training.export import export_symbol_params

    ctx = mx.cpu()
    directory.mkdir(parents=True)
    if algorithm == "image-classification":
        from sagemaker_cv.algorithms.classification.network import WithActivation, classification_network

        block = WithActivation(classification_network(50, 1000, 3, False, [ctx]), "softmax")
        block(mx.nd.zeros((1, 3, 224, 224)))
        export_symbol_params(block, directory / "image-classification", 1, ctx)
        (directory / "model-shapes.json").write_text(
            json.dumps([{"shape": [32, 3, 224, 224], "name": "data"}])
        )
    elif algorithm == "object-detection":
        from sagemaker_cv.algorithms.detection.network import Detections, build_detector

        detector = build_detector(detection_base, 20, 300, pretrained=False, ctx=[ctx])
        block = Detections(detector.net, 300)
        block(mx.nd.zeros((1, 3, 300, 300)))
        export_symbol_params(block, directory / "model_algo_1", 0, ctx)
        hp = {"base_network": detection_base, "num_classes": "20", "image_shape": "300"}
        (directory / "hyperparams.json").write_text(json.dumps(hp))
    else:
        from sagemaker_cv.algorithms.segmentation.network import WholeImage, segmentation_network

        net = segmentation_network("fcn", "resnet-50", 21, 480, False, [ctx])
        whole = WholeImage(net)
        whole(mx.nd.zeros((1, 3, 360, 480)))
        export_symbol_params(whole, directory / "model_algo-1", 0, ctx)
        net.model.save_parameters(str(directory / "model_algo-1"))
        hp = {"algorithm": "fcn", "backbone": "resnet-50", "num_classes": "21", "crop_size": "480"}
        (directory / "hyperparams.json").write_text(json.dumps(hp))


def images(algorithm: str, count: int) -> list[bytes]:
    height, width = SIZES[algorithm]
    rng = np.random.default_rng(0)
    out = []
    for _ in range(count):
        small = rng.integers(0, 256, (height // 8, width // 8, 3), dtype=np.uint8)
        picture = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
        out.append(cv2.imencode(".jpg", picture)[1].tobytes())
    return out


class Bare:
    """The predictor's own network in this process, on inputs decoded and transformed beforehand."""

    def __init__(self, model_dir: Path, bodies: list[bytes]):
        import mxnet as mx

        from sagemaker_cv.algorithms.trained import open_model

        model = open_model(model_dir, model_dir.parent / "unpacked")
        self.predictor = model.algorithm.load_predictor(model, mx.cpu())
        self.bodies = bodies
        self.prepared = [self.predictor.prepare(b) for b in bodies]
        for p in self.prepared[:2]:
            self.predictor.net(p.x).asnumpy()  # warm-up: graph build, first allocations

    def images_per_s(self) -> float:
        started = time.perf_counter()
        for p in self.prepared:
            self.predictor.net(p.x).asnumpy()
        return len(self.prepared) / (time.perf_counter() - started)

    def profile(self) -> dict:
        """ms per image of each part of a whole call, the same predictor in this process."""
        predictor, accept = self.predictor, self.predictor.accepts[0]
        parts = {"prepare": 0.0, "forward": 0.0, "respond": 0.0}
        for body in self.bodies:
            t0 = time.perf_counter()
            image = predictor.prepare(body)
            t1 = time.perf_counter()
            output = predictor.forward(image.x, accept)
            t2 = time.perf_counter()
            predictor.respond(output, image, accept)
            t3 = time.perf_counter()
            parts["prepare"] += t1 - t0
            parts["forward"] += t2 - t1
            parts["respond"] += t3 - t2
        return {k: round(v / len(self.bodies) * 1e3, 1) for k, v in parts.items()}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(ml_root: Path, workers: int, log: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = {**os.environ, "SAGEMAKER_MODEL_SERVER_WORKERS": str(workers)}
    cmd = [sys.executable, "-m", "sagemaker_cv.cli", "serve", "--ml-root", str(ml_root), "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/ping")
            if conn.getresponse().status == 200:
                return proc, port
        except OSError:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"the server exited: {log.read_text()[-2000:]}")
        time.sleep(0.3)
    raise SystemExit("the server did not start")


def load(port: int, bodies: list[bytes], concurrency: int, ping: bool) -> dict:
    """Every body once, `concurrency` clients with a keep-alive connection each; /ping every 20 ms."""
    latencies: list[float] = []
    pings: list[float] = []
    statuses: list[int] = []
    queue = list(bodies)
    lock = threading.Lock()

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        while True:
            with lock:
                if not queue:
                    break
                body = queue.pop()
            started = time.perf_counter()
            conn.request("POST", "/invocations", body, {"Content-Type": "image/jpeg"})
            response = conn.getresponse()
            response.read()
            with lock:
                latencies.append(time.perf_counter() - started)
                statuses.append(response.status)
        conn.close()

    running = True

    def pinger():
        time.sleep(1.0)  # every worker busy by now
        while running:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            started = time.perf_counter()
            conn.request("GET", "/ping")
            conn.getresponse().read()
            pings.append(time.perf_counter() - started)
            conn.close()
            time.sleep(0.02)

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    watcher = threading.Thread(target=pinger)
    started = time.perf_counter()
    for t in threads:
        t.start()
    if ping:
        watcher.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    running = False
    if ping:
        watcher.join()
    latencies.sort()
    result = {
        "images_per_s": len(bodies) / elapsed,
        "p50_ms": 1e3 * statistics.median(latencies),
        "p99_ms": 1e3 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        "errors": sum(s != 200 for s in statuses),
    }
    if pings:
        pings.sort()
        result["ping_p99_ms"] = 1e3 * pings[min(len(pings) - 1, int(0.99 * len(pings)))]
        result["pings"] = len(pings)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algorithm", nargs="+", default=list(SIZES))
    parser.add_argument("--workers", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--requests", type=int, default=24)
    parser.add_argument("--detection-base", default="vgg-16")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for algorithm in args.algorithm:
            root = Path(tmp) / algorithm
            write_model(algorithm, root / "model", args.detection_base)
            bodies = images(algorithm, args.requests)
            figures = {"algorithm": algorithm, "size": SIZES[algorithm], "requests": len(bodies)}
            reference = Bare(root / "model", bodies)
            if args.profile:
                figures["ms_per_image"] = reference.profile()
            print(json.dumps(figures), flush=True)
            for workers in args.workers:
                proc, port = serve(root, workers, Path(tmp) / f"{algorithm}-{workers}.log")
                try:
                    load(port, bodies[:4], 2, ping=False)  # warm every worker's graph
                    for concurrency in (1, 4):
                        # The machine is shared: the bare loop runs right before and after each
                        # served run, and the ratio is to their mean.
                        before = reference.images_per_s()
                        result = load(port, bodies, concurrency, ping=concurrency >= workers)
                        bare = (before + reference.images_per_s()) / 2
                        result["bare_images_per_s"] = bare
                        result["ratio_to_bare"] = result["images_per_s"] / bare
                        result["load_average"] = os.getloadavg()[0]
                        row = {"algorithm": algorithm, "workers": workers, "concurrency": concurrency}
                        print(json.dumps({**row, **{k: round(v, 3) for k, v in result.items()}}), flush=True)
                finally:
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(60)


if __name__ == "__main__":
    main()
