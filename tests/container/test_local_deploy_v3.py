"""The SageMaker Python SDK v3's local serving of the image (sdk3_local_deploy.py, run with the SDK
v3 environment's Python, see conftest.py's `sdk3_python`): a local endpoint answers each image,
and a local batch transform writes, byte for byte, what the endpoint answered with the same
Accept and what `sagemaker-cv predict` writes in the image.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from container_helpers import LOCAL_NETWORK, docker, record_seconds, remove_local_mode_leftovers
from deploy_helpers import SIZES, check_answer, files_of, free_port, predict_in_image, request_images

pytestmark = pytest.mark.container

DRIVER = Path(__file__).with_name("sdk3_local_deploy.py")
ACCEPT = "application/jsonlines"  # batch transform's default for classification, asked for by name


@pytest.fixture
def leftovers(tmp_path):
    network_existed = docker("network", "inspect", LOCAL_NETWORK).returncode == 0
    yield
    remove_local_mode_leftovers(tmp_path, network_existed)


def test_sdk3_local_endpoint_and_transform(sdk3_python, cpu_image, models, tmp_path, leftovers):
    archive = models["image-classification"].archive
    images = request_images(tmp_path / "images")
    (tmp_path / "local").mkdir()
    command = [
        sdk3_python, str(DRIVER), "--image", cpu_image, "--model-data", str(archive),
        "--root", str(tmp_path / "local"), "--port", str(free_port()),
        "--images", str(images), "--output", str(tmp_path / "sdk3"), "--accept", ACCEPT,
    ]  # fmt: skip
    # Local mode needs a region; no AWS call is made (local data, a local image).
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}
    env.pop("PYTHONPATH", None)  # the SDK v3 environment, not this package's source
    start = time.monotonic()
    run = subprocess.run(
        command,
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=600,
    )
    record_seconds("SDK v3 local endpoint + local transform", time.monotonic() - start)
    assert run.returncode == 0, run.stdout[-5000:]

    answered, transformed = (
        files_of(tmp_path / "sdk3" / "endpoint"),
        files_of(tmp_path / "sdk3" / "transform"),
    )
    assert sorted(answered) == sorted(transformed) == sorted(f"{name}.out" for name in SIZES)
    for name, (height, width) in SIZES.items():
        check_answer("image-classification", ACCEPT, answered[f"{name}.out"], height, width)
    assert answered == transformed
    predicted = predict_in_image(cpu_image, archive, images, tmp_path / "predict", "--accept", ACCEPT)
    assert predicted.returncode == 0, predicted.stdout[-3000:]
    assert files_of(tmp_path / "predict") == transformed
