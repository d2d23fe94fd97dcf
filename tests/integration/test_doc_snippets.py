"""Every snippet in README.md and docs/ runs as written.

- The README's "Train on your own images" block runs in bash on a folder of two classes of
  pictures, and trains.
- Every ```python block runs in a fresh directory holding `model/` (the page's algorithm's
  reference job's model directory), `street.jpg` (one of that job's validation images) and, on
  the serving page, `probs.rec` (the server's protobuf answer for it, made by the same handler).
- ```python aws blocks need an AWS account or a Docker engine (the SageMaker SDK's calls, run for
  real by the container tier's local-mode tests); here they must compile and import only modules
  that exist.

Tier: fast (the reference jobs are shared; the README's job trains a ResNet-20 for two epochs)."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

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
