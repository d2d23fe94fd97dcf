"""`docker run IMAGE serve` as SageMaker hosting runs it, one container per algorithm: the model
mounted at /opt/ml/model, the port from $SAGEMAKER_BIND_TO_PORT (the image declares that it may),
every response format, answers equal to the same model's on the host, and `docker stop` draining
the requests in flight within SageMaker's 30 s.

The engine here may have no bridge network, so the server listens on the host's network
(`--network host`) on a free port, which SAGEMAKER_BIND_TO_PORT hands it, as inference pipelines do.
"""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
from container_helpers import docker, record_seconds
from deploy_helpers import (
    ACCEPTS,
    ALGORITHMS,
    SIZES,
    check_answer,
    free_port,
    request,
    request_images,
    wait_ready,
)

pytestmark = pytest.mark.container

LABEL = "com.amazonaws.sagemaker.capabilities.accept-bind-to-port"


def host_handler(model_dir):
    """The same model's handler in this process (MXNet on the host): the expected answers."""
    import tempfile
    from pathlib import Path

    import mxnet as mx

    from sagemaker_cv.algorithms.trained import open_model
    from sagemaker_cv.serving.handler import Handler

    model = open_model(model_dir, Path(tempfile.mkdtemp()))
    return Handler(model.algorithm.load_predictor(model, mx.cpu()))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_docker_run_serve(cpu_images, models, tmp_path, algorithm):
    image, model = cpu_images[algorithm], models[algorithm]
    assert (
        docker(
            "image", "inspect", "--format", f'{{{{index .Config.Labels "{LABEL}"}}}}', image
        ).stdout.strip()
        == "true"
    )
    port = free_port()
    name = f"sagemaker-cv-serve-{algorithm}-{port}"
    docker(
        "run", "-d", "--name", name, "--network", "host", "-e", f"SAGEMAKER_BIND_TO_PORT={port}",
        "-v", f"{model.model_dir}:/opt/ml/model:ro", image, "serve", check=True,
    )  # fmt: skip
    try:
        record_seconds(f"docker run serve -> /ping 200 [{algorithm}]", wait_ready(port, name))
        status, _, body = request(port, "GET", "/execution-parameters")
        params = json.loads(body)
        assert status == 200 and set(params) == {"MaxConcurrentTransforms", "BatchStrategy", "MaxPayloadInMB"}
        # MaxConcurrentTransforms: the workers, one per core here
        assert params["MaxConcurrentTransforms"] >= 1 and params["BatchStrategy"] == "SINGLE_RECORD"
        assert params["MaxPayloadInMB"] == 6

        expected = host_handler(model.model_dir)
        images = request_images(tmp_path / "images")
        for file, (height, width) in SIZES.items():
            data = (images / file).read_bytes()
            for accept in ACCEPTS[algorithm]:
                status, headers, body = request(
                    port,
                    "POST",
                    "/invocations",
                    data,
                    {"Content-Type": "application/x-image", "Accept": accept},
                )
                assert (status, headers["content-type"]) == (200, accept), body[:300]
                served = check_answer(algorithm, accept, body, height, width)
                mine = expected(data, "application/x-image", accept)
                ours = check_answer(algorithm, accept, mine.body, height, width)
                # The container's workers run one OpenMP thread, this process MXNet's default:
                # the last bits may differ, a class or a box may not.
                if served.dtype.kind == "f":
                    np.testing.assert_allclose(served, ours, rtol=1e-4, atol=1e-4)
                else:
                    np.testing.assert_array_equal(served, ours)
        stopped_in, statuses = stop_while_busy(name, port, (images / "street.jpg").read_bytes())
        record_seconds(f"docker stop with requests in flight [{algorithm}]", stopped_in)
        log = docker("logs", name).stdout
        exit_code = int(docker("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip())
    finally:
        docker("rm", "-f", name)
    assert statuses and set(statuses) == {200}, (statuses, log[-3000:])
    assert exit_code == 0 and stopped_in < 25, (exit_code, stopped_in, log[-3000:])
    assert "Handling signal: term" in log and "Shutting down: Master" in log, log[-3000:]


def stop_while_busy(name: str, port: int, data: bytes) -> tuple[float, list[int]]:
    """`docker stop -t 30` (SageMaker's SIGTERM, then SIGKILL 30 s later) while clients keep
    sending; the seconds it took and the status of every request that was answered."""
    statuses: list[int] = []
    stop = threading.Event()

    def client():
        while not stop.is_set():
            try:
                statuses.append(
                    request(port, "POST", "/invocations", data, {"Content-Type": "image/jpeg"})[0]
                )
            except OSError:  # the server has stopped accepting connections
                return

    clients = [threading.Thread(target=client) for _ in range(3)]
    for c in clients:
        c.start()
    time.sleep(1.0)
    start = time.monotonic()
    docker("stop", "-t", "30", name, timeout=60, check=True)
    stopped_in = time.monotonic() - start
    stop.set()
    for c in clients:
        c.join(30)
    return stopped_in, statuses
