"""Every snippet in README.md and docs/ runs as written.

- The README's "Train on your own images" block runs in bash on a folder of two classes of
  pictures, and trains.
- Every ```python block runs in a fresh directory holding `model/` (the page's algorithm's
  reference job's model directory), `street.jpg` (one of that job's validation images) and, on
  the serving page, `probs.rec` (the server's protobuf answer for it, made by the same handler).
- The README's serving examples (its `sagemaker-cv serve` block, then each ```bash serve ALGORITHM
  block of curl calls) run in bash against the algorithm's reference model, on a free port.
- ```python aws blocks need an AWS account or a Docker engine (the SageMaker SDK's calls, run for
  real by the container tier's local-mode tests); here they must compile and import only modules
  that exist.
- The bash blocks of docs/ that run on one machine (Pipe mode fed by `pipefeed` in inputs.md, two
  hosts on loopback in distributed.md) train for real in test_doc_bash_snippets.py, in the slow
  and cluster tiers.

Tier: fast (the reference jobs are shared; the README's job trains a ResNet-20 for two epochs)."""

from __future__ import annotations

import ast
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from subprocess import PIPE

import cv2
import numpy as np
import pytest

from sagemaker_cv.tools.demo import draw

pytestmark = pytest.mark.fast

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
#: the reference job whose model a page's Python snippets load (others: image classification)
ALGORITHM = {
    "object-detection.md": "object-detection",
    "semantic-segmentation.md": "semantic-segmentation",
    "serving.md": "semantic-segmentation",
}
#: pages whose snippets need more than a model directory run them in their own tests
OWN_TESTS = {"onnx.md": "test_onnx_export.py::test_the_five_lines_of_the_doc_run_the_exported_model"}


def snippets(page: Path, language: str) -> list[tuple[str, str]]:
    """(info string, code) of every fenced block of `language` on the page."""
    return re.findall(rf"^```({language}[^\n]*)\n(.*?)^```", page.read_text(), re.S | re.M)


PYTHON = [
    (page, i, info, code)
    for page in PAGES
    if page.name not in OWN_TESTS
    for i, (info, code) in enumerate(snippets(page, "python"))
]


def label(case) -> str:
    return f"{case[0].name}-{case[1]}"


def environment() -> dict:
    """This interpreter's environment first on PATH, as after `make demo`."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    return env


def test_the_readmes_own_images_walkthrough_trains(tmp_path):
    (info, code), *_ = [s for s in snippets(REPO / "README.md", "bash") if "im2rec" in s[1]]
    rng = np.random.default_rng(0)
    for cls in ("checkerboard", "disc"):
        (tmp_path / "photos" / cls).mkdir(parents=True)
        for i in range(15):
            cv2.imwrite(str(tmp_path / "photos" / cls / f"{i}.jpg"), draw(cls, 48, rng))
    proc = subprocess.run(
        ["bash", "-e", "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=environment(),
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Validation passed: train: 24 samples, validation: 6 samples" in proc.stdout
    assert len(re.findall(r"Validation-accuracy=\d\.\d+", proc.stdout)) == 2
    assert (tmp_path / "model.tar.gz").is_file() and (
        tmp_path / "ml" / "model" / "model-shapes.json"
    ).is_file()


@pytest.mark.parametrize("case", [c for c in PYTHON if c[2] == "python"], ids=label)
def test_each_python_snippet_runs(trained, tmp_path, case):
    page, _, _, code = case
    job = trained(ALGORITHM.get(page.name, "image-classification"))
    shutil.copytree(job.model_dir, tmp_path / "model")
    image = sorted(p for p in (job.root / "input/data/validation").iterdir() if p.suffix in (".jpg", ".png"))
    if image:
        shutil.copy(image[0], tmp_path / "street.jpg")
    else:  # RecordIO only: any picture will do
        cv2.imwrite(str(tmp_path / "street.jpg"), draw("disc", 48, np.random.default_rng(0)))
    if page.name == "serving.md":
        answer(job, tmp_path / "street.jpg", "application/x-recordio-protobuf", tmp_path / "probs.rec")
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=environment(),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


def answer(job, image, accept: str, out) -> None:
    """What the server answers for `image` with `accept`, written to `out`."""
    import mxnet as mx

    from sagemaker_cv.algorithms.trained import open_model
    from sagemaker_cv.serving.handler import Handler

    model = open_model(job.model_dir, job.root / "unused")
    response = Handler(model.algorithm.load_predictor(model, mx.cpu()))(
        image.read_bytes(), "image/jpeg", accept
    )
    assert response.status == 200, response.body
    out.write_bytes(response.body)


@pytest.mark.parametrize("case", [c for c in PYTHON if c[2] != "python"], ids=label)
def test_each_aws_snippet_compiles_and_imports_what_exists(case):
    page, _, info, code = case
    assert info == "python aws", f"{page.name}: unknown snippet kind {info!r}"
    tree = ast.parse(code)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module.startswith("sagemaker."):
            # SDK v3's modules are in its own environment; v2's must import here.
            if node.module.startswith(("sagemaker.train", "sagemaker.core")):
                continue
            module = __import__(node.module, fromlist=[a.name for a in node.names])
            for alias in node.names:
                assert hasattr(module, alias.name), f"{page.name}: {node.module}.{alias.name}"


MARK = "--- answers ---"
SERVE_BLOCKS = {info.split()[-1]: code for info, code in snippets(REPO / "README.md", "bash serve ")}


@pytest.mark.parametrize("algorithm", sorted(SERVE_BLOCKS))
def test_the_readmes_serving_examples_answer_in_the_builtins_formats(trained, tmp_path, algorithm):
    """The README's start block and the algorithm's curl block, run by bash against the reference
    model: only the port (a free one) and where the server's log goes differ from the page."""
    from serving_helpers import free_port

    (start,) = [code for _, code in snippets(REPO / "README.md", "bash") if "sagemaker-cv serve" in code]
    job = trained(algorithm)
    (tmp_path / "ml").symlink_to(job.root)
    image = sorted(p for p in (job.root / "input/data/validation").iterdir() if p.suffix == ".jpg")
    picture = cv2.imread(str(image[0])) if image else draw("disc", 48, np.random.default_rng(0))
    cv2.imwrite(str(tmp_path / "picture.jpg"), picture)
    port = free_port()
    served = start.replace(" &\n", " > serve.log 2>&1 &\n")  # the ping's answers stay apart from the block's
    script = f"{served}echo {MARK}\n{SERVE_BLOCKS[algorithm]}kill $!; wait\n".replace(
        "localhost:8080", f"localhost:{port}"
    )
    env = {**environment(), "SAGEMAKER_BIND_TO_PORT": str(port), "SAGEMAKER_MODEL_SERVER_WORKERS": "1"}
    # A session of its own: whatever the script leaves running (a server, if it fails early) dies with it.
    proc = subprocess.Popen(
        ["bash", "-c", script],
        cwd=tmp_path,
        stdout=PIPE,
        stderr=PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    log = (tmp_path / "serve.log").read_text()[-2000:]
    assert proc.returncode == 0, stderr[-2000:] + log
    answers = json_values(stdout.split(MARK)[1])
    if algorithm == "image-classification":
        probabilities, lines = answers
        assert abs(sum(probabilities) - 1) < 1e-4 and lines == {"prediction": probabilities}
    elif algorithm == "object-detection":
        boxes, annotated = answers
        assert all(len(row) == 6 and 0 <= row[1] <= 1 for row in boxes["prediction"]), boxes
        assert annotated["image_size"] == [
            {"width": picture.shape[1], "height": picture.shape[0], "depth": 3}
        ]
        assert [a["class_id"] for a in annotated["annotations"]] == [int(r[0]) for r in boxes["prediction"]]
    else:
        from PIL import Image

        mask = np.array(Image.open(tmp_path / "mask.png"))  # palette indices: the class ids
        assert mask.shape == picture.shape[:2] and mask.max() < 3, log
        assert (tmp_path / "probabilities.rec").stat().st_size > mask.size * 4  # float32 per class and pixel


def json_values(text: str) -> list:
    """The JSON values curl printed one after another (its answers end without a newline)."""
    decoder, values, at = json.JSONDecoder(), [], 0
    while text[at:].strip():
        at += len(text[at:]) - len(text[at:].lstrip())
        value, at = decoder.raw_decode(text, at)
        values.append(value)
    return values
