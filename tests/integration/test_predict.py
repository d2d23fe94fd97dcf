"""`sagemaker-cv predict` on each algorithm's reference model: a folder of images in, one `.out`
per image holding the bytes a batch-transform server answers for it (SAGEMAKER_BATCH=true, the
same worker threads), a bad image named while the others go on, exit 2.

Tier: fast (the session's reference models; a predict run and a server per algorithm, seconds each).
The container tier compares predict with the SageMaker SDK's local batch transform.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from serving_helpers import encoded, picture, png_bytes_of, start

pytestmark = pytest.mark.fast

ALGORITHMS = ("image-classification", "object-detection", "semantic-segmentation")
#: batch transform's default for each (another --accept: the container tier and the unit tests)
DEFAULT = {
    "image-classification": "application/jsonlines",
    "object-detection": "application/json",
    "semantic-segmentation": "image/png",
}
#: one worker for the server and for predict: the same OpenMP threads (they change SSD's last bits)
WORKERS = {"SAGEMAKER_MODEL_SERVER_WORKERS": "1"}


def images(folder):
    (folder / "day2").mkdir(parents=True)
    (folder / "street.jpg").write_bytes(encoded(picture(45, 61, seed=1)))
    (folder / "day2" / "park.png").write_bytes(png_bytes_of(picture(52, 38, seed=2)))
    whole = encoded(picture(60, 80, seed=3))
    (folder / "broken.jpg").write_bytes(whole[: len(whole) // 2])
    return folder


def predict(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sagemaker_cv", "predict", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **WORKERS},
    )


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_predict_writes_what_a_batch_server_answers(trained, tmp_path, algorithm):
    job = trained(algorithm)
    source = images(tmp_path / "in")
    # A model.tar.gz (unpacked with the archive guard) or the model directory itself
    model = job.archive if algorithm == "image-classification" else job.model_dir
    run = predict("--model", str(model), "--input", str(source), "--output", str(tmp_path / "out"))
    assert run.returncode == 2, run.stderr[-3000:]  # the broken image
    assert "predict: broken.jpg: the JPEG image (" in run.stderr and "bytes) is truncated" in run.stderr
    assert f"answers as {DEFAULT[algorithm]}" in run.stderr
    assert run.stderr.strip().splitlines()[-1].endswith(f"2 written to {tmp_path / 'out'}, 1 failed")
    written = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*"))
    assert written == ["day2", "day2/park.png.out", "street.jpg.out"]

    server = start(job.root, tmp_path / "serve.log", env={"SAGEMAKER_BATCH": "true", **WORKERS})
    try:
        for name in ("street.jpg", "day2/park.png"):
            reply = server.invoke((source / name).read_bytes(), "application/x-image")
            assert (reply.status, reply.content_type) == (200, DEFAULT[algorithm])
            assert (tmp_path / "out" / f"{name}.out").read_bytes() == reply.body, name
    finally:
        assert server.stop() == 0, server.output()[-2000:]


def test_an_accept_the_model_does_not_answer_is_refused_before_any_file(trained, tmp_path):
    job = trained("image-classification")
    run = predict(
        "--model", str(job.archive), "--input", str(images(tmp_path / "in")), "--output", str(tmp_path / "out"),
        "--accept", "image/png",
    )  # fmt: skip
    assert run.returncode == 2
    assert "--accept 'image/png': this model answers application/json, application/jsonlines" in run.stderr
    assert not (tmp_path / "out").exists()
