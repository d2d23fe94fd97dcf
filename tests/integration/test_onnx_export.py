"""`sagemaker-cv export-onnx` on the session's reference models, parity in onnxruntime, the named
refusals, the five lines of docs/onnx.md, and SAGEMAKER_CV_EXPORT_ONNX=1 in a training job.

Tier: fast for image classification (export + parity ~3 s on top of the shared reference job)
and the refusals (no training); slow for detection and segmentation (export + parity ~10-20 s
each, ResNet-50; segmentation exports the reference job and a copy whose classes vary per pixel)
and for the training job with the export.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from sagemaker_cv.cli import main

mx = pytest.importorskip("mxnet")
ort = pytest.importorskip("onnxruntime")

DOC = Path(__file__).resolve().parents[2] / "docs" / "onnx.md"


def export(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["export-onnx", *args])
    out = capsys.readouterr()
    print(out.out, out.err)  # the measured differences, in the test log
    return code, out.out, out.err


def measures(out: str, name: str) -> list[float]:
    return [float(v) for v in re.findall(rf"{re.escape(name)} ([-0-9.e+]+)", out)]


def demo_pictures(directory: Path, size: int = 32) -> list[Path]:
    """Pictures like the classification job's (one per pattern), as PNG files."""
    import cv2

    from sagemaker_cv.tools.demo import PATTERNS, draw

    rng = np.random.default_rng(3)
    paths = []
    for pattern in PATTERNS[:3]:
        path = directory / f"{pattern}.png"
        cv2.imwrite(str(path), draw(pattern, size, rng))
        paths.append(path)
    return paths


def tempered(model_dir: Path, destination: Path) -> Path:
    """A copy whose output layer is scaled down: the reference job's probabilities are 0 and 1
    (2 epochs on 8 pictures), where a max |dp| says little; these are in between."""
    copy = Path(shutil.copytree(model_dir, destination))
    params = sorted(copy.glob("image-classification-*.params"))[-1]
    saved = mx.nd.load(str(params))
    for key in [k for k in saved if k.startswith("arg:") and "dense" in k]:
        saved[key] = saved[key] * 1e-2
    mx.nd.save(str(params), saved)
    return copy


@pytest.mark.fast
def test_classification_exports_with_parity(trained, tmp_path, capsys):
    job = trained("image-classification")
    pictures = demo_pictures(tmp_path)
    output = tmp_path / "classifier.onnx"
    code, out, err = export(
        capsys, "--model", str(job.archive), "--output", str(output), "--image", str(pictures[0])
    )
    assert code == 0, err
    assert "onnx.checker passed" in out and "image horizontal.png" in out
    assert output.is_file() and not list(tmp_path.glob(".sagemaker-cv-tmp-*"))
    assert max(measures(out, "max |dp|")) <= 1e-4

    model = tempered(job.model_dir, tmp_path / "tempered")
    args = ["--model", str(model), "--output", str(tmp_path / "t.onnx"), "--dynamic-batch", "--dynamic-size"]
    code, out, err = export(capsys, *args, *[a for p in pictures for a in ("--image", str(p))])
    assert code == 0, err
    assert "input data Nx3xHxW" in out and "in one batch" in out and "random at 32x40" in out
    assert max(measures(out, "max |dp|")) <= 1e-4
    session = ort.InferenceSession(str(tmp_path / "t.onnx"), providers=["CPUExecutionProvider"])
    probabilities = session.run(None, {"data": np.stack([_read(p) for p in pictures])})[0]
    assert probabilities.shape == (3, 3) and 0.05 < probabilities.max() < 0.95  # not saturated


def _read(path: Path, size=(24, 24)) -> np.ndarray:
    from sagemaker_cv.tools.onnx_export.parity import read_image

    return read_image(path, size)


@pytest.mark.fast
def test_the_five_lines_of_the_doc_run_the_exported_model(trained, tmp_path, capsys, monkeypatch):
    code, _, err = export(
        capsys,
        "--model",
        str(trained("image-classification").model_dir),
        "--output",
        str(tmp_path / "model.onnx"),
    )
    assert code == 0, err
    block = (
        DOC.read_text().split("## Run it in onnxruntime", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    )
    assert len(block.strip().splitlines()) == 5
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    exec(compile(block, str(DOC), "exec"), {})
    assert capsys.readouterr().out.strip() == "(1, 3)"


def test_detection_exports_with_parity(trained, tmp_path, capsys):
    job = trained("object-detection")
    output = tmp_path / "detector.onnx"
    code, out, err = export(capsys, "--model", str(job.archive), "--output", str(output), "--dynamic-batch")
    assert code == 0, err
    assert all(rows >= 1 for rows in measures(out, "rows")), out  # detections were compared
    assert max(measures(out, "max |dscore|")) <= 1e-4 and max(measures(out, "max |dbox|")) <= 1e-4
    session = ort.InferenceSession(str(output), providers=["CPUExecutionProvider"])
    rows = session.run(None, {"data": np.zeros((2, 3, 300, 300), np.float32)})[0]
    assert rows.shape == (2, 100, 6)


def standardised_segmenter(model_dir: Path, destination: Path, size, pictures: list[Path]) -> Path:
    """A copy whose classifier (the head's last 1x1 convolution) is rescaled class by class so
    that each class's score has mean 0 and standard deviation 1 over the pixels the export checks
    (its random inputs and `pictures`). The reference FCN's scores lie thousands apart and favour
    one class everywhere (2 epochs on 8 pictures), so its argmax agrees trivially and its
    probabilities are 0 and 1; the copy's classes vary pixel by pixel and its probabilities lie in
    between. Everything before the classifier is the trained network."""
    from sagemaker_cv.algorithms.trained import open_model
    from sagemaker_cv.tools.onnx_export import RANDOM_INPUTS, graphs
    from sagemaker_cv.tools.onnx_export.parity import random_images, read_image

    graph = graphs.load(open_model(model_dir, destination / "unused"), size, False)
    assert graph.symbol.list_outputs()[0].endswith("softmax0_output")
    scores = graphs.run_symbol(graph.symbol.get_children()[0], graph.params)  # before the softmax
    inputs = random_images(RANDOM_INPUTS, size) + [read_image(p, size) for p in pictures]
    values = np.concatenate([scores(image[None]) for image in inputs])
    mean, std = values.mean(axis=(0, 2, 3)), values.std(axis=(0, 2, 3))
    copy = Path(shutil.copytree(model_dir, destination / "model"))
    saved = mx.nd.load(str(copy / "model_algo-1"))
    weight, bias = saved["head.block.4.weight"].asnumpy(), saved["head.block.4.bias"].asnumpy()
    saved["head.block.4.weight"] = mx.nd.array(weight / std[:, None, None, None])
    saved["head.block.4.bias"] = mx.nd.array((bias - mean) / std)
    mx.nd.save(str(copy / "model_algo-1"), saved)
    return copy


def test_segmentation_exports_with_parity(trained, tmp_path, capsys):
    from sagemaker_cv.tools.onnx_export.parity import TOLERANCES

    job = trained("semantic-segmentation")
    pictures = sorted((job.root / "input" / "data" / "validation").glob("*.jpg"))[:2]
    output = tmp_path / "segmenter.onnx"
    images = [a for p in pictures for a in ("--image", str(p))]
    code, out, err = export(
        capsys, "--model", str(job.model_dir), "--output", str(output), "--size", "48,64", *images
    )
    assert code == 0, err
    assert "input data 1x3x48x64" in out and min(measures(out, "argmax agreement")) >= TOLERANCES["agreement"]

    model = standardised_segmenter(job.model_dir, tmp_path / "standardised", (48, 64), pictures)
    args = ["--model", str(model), "--output", str(tmp_path / "s.onnx"), "--size", "48,64", *images]
    capsys.readouterr()  # the first export's lines, which `export` echoed
    code, out, err = export(capsys, *args)
    assert code == 0, err
    assert len(measures(out, "classes seen")) == 4  # 2 random inputs and 2 pictures
    assert min(measures(out, "classes seen")) >= 2, out
    assert min(measures(out, "argmax agreement")) >= TOLERANCES["agreement"]
    # Probabilities in between 0 and 1 differ by no more than the classifier's bound allows.
    assert max(measures(out, "max |dp|")) <= TOLERANCES["probability"]
    session = ort.InferenceSession(str(tmp_path / "s.onnx"), providers=["CPUExecutionProvider"])
    probabilities = session.run(None, {"data": _read(pictures[0], (48, 64))[None]})[0]
    assert probabilities.shape == (1, 3, 48, 64)
    print(
        "most likely class's probability, quartiles:", np.percentile(probabilities.max(axis=1), [25, 50, 75])
    )
    assert np.median(probabilities.max(axis=1)) < 0.9  # not saturated, unlike the reference job's


@pytest.mark.parametrize("algorithm", ["fcn", "psp", "deeplab"])
def test_every_segmentation_network_exports_from_its_gluoncv_parameters(algorithm, tmp_path, capsys):
    """Random weights (no training), so the outputs vary per pixel; only model_algo-1 and
    hyperparams.json, as the built-in's artifact has."""
    from sagemaker_cv.algorithms.segmentation.network import segmentation_network

    net = segmentation_network(algorithm, "resnet-50", 4, 48, pretrained=False, ctx=[mx.cpu()])
    net(mx.nd.zeros((1, 3, 48, 48)))
    net.model.save_parameters(str(tmp_path / "model_algo-1"))
    hp = {"algorithm": algorithm, "backbone": "resnet-50", "num_classes": "4", "crop_size": "48"}
    (tmp_path / "hyperparams.json").write_text(json.dumps(hp))
    code, out, err = export(capsys, "--model", str(tmp_path), "--output", str(tmp_path / "m.onnx"))
    assert code == 0, err
    assert min(measures(out, "argmax agreement")) >= 0.999 and max(measures(out, "classes seen")) >= 2
    if algorithm == "psp":  # its pyramid pools a 5x5 map to 2x2, 3x3 and 6x6 at 40 px
        code, _, err = export(
            capsys, "--model", str(tmp_path), "--output", str(tmp_path / "n.onnx"), "--size", "40"
        )
        assert code == 2 and "_contrib_AdaptiveAvgPooling2D" in err and not (tmp_path / "n.onnx").exists()


def fake_model(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text)
    return directory


@pytest.mark.fast
@pytest.mark.parametrize(
    "files, args, message",
    [
        (
            {"model_algo-1": "", "hyperparams.json": json.dumps({"crop_size": "32"})},
            ["--dynamic-size"],
            r"semantic-segmentation: --dynamic-size: .*\(_contrib_BilinearResize2D, mode 'like'\)",
        ),
        (
            {"model_algo_1-symbol.json": "{}", "hyperparams.json": json.dumps({"image_shape": "300"})},
            ["--size", "320,320"],
            r"object-detection: --size 320,320: .*divides its boxes by its image_shape \(300\)",
        ),
        (
            {"model_algo-1": "", "hyperparams.json": "{}"},
            ["--size", "12,8"],
            r"--size '12,8': expected a height",
        ),
        ({"notes.txt": ""}, [], r"no model file of a known algorithm \(it holds notes.txt\)"),
    ],
)
def test_bad_requests_are_named_and_write_nothing(tmp_path, capsys, files, args, message):
    model = fake_model(tmp_path / "model", files)
    output = tmp_path / "out.onnx"
    code, _, err = export(capsys, "--model", str(model), "--output", str(output), *args)
    assert code == 2 and re.search(message, err), err
    assert not output.exists() and not list(tmp_path.glob(".sagemaker-cv-tmp-*"))


@pytest.mark.fast
def test_the_builtin_detectors_training_graph_is_refused_naming_its_operators(tmp_path, capsys):
    """The built-in's model_algo_1 is a training graph: MultiBoxPrior/Detection have no converter."""
    data = mx.sym.var("data")
    features = mx.sym.Convolution(data, num_filter=8, kernel=(3, 3), stride=(8, 8), name="conv")
    anchors = mx.sym.contrib.MultiBoxPrior(features, sizes=(0.5,), name="anchors")
    classes = mx.sym.softmax(
        mx.sym.reshape(
            mx.sym.Convolution(features, num_filter=2, kernel=(1, 1), name="cls"), shape=(0, 2, -1)
        ),
        axis=1,
    )
    boxes = mx.sym.flatten(mx.sym.Convolution(features, num_filter=4, kernel=(1, 1), name="loc"))
    symbol = mx.sym.contrib.MultiBoxDetection(classes, boxes, anchors, name="detection")
    model = fake_model(tmp_path / "model", {"hyperparams.json": json.dumps({"image_shape": "300"})})
    symbol.save(str(model / "model_algo_1-symbol.json"))
    shapes = dict(zip(symbol.list_arguments(), symbol.infer_shape(data=(1, 3, 300, 300))[0]))
    mx.nd.save(
        str(model / "model_algo_1-0000.params"),
        {f"arg:{k}": mx.nd.zeros(s) for k, s in shapes.items() if k != "data"},
    )
    code, _, err = export(capsys, "--model", str(model), "--output", str(tmp_path / "out.onnx"))
    assert code == 2, err
    assert "_contrib_MultiBoxPrior (anchors)" in err and "_contrib_MultiBoxDetection (detection)" in err
    assert not (tmp_path / "out.onnx").exists()


def test_a_training_job_writes_model_onnx_when_asked(tmp_path):
    from ml_tree import train

    from sagemaker_cv.tools.demo import write_example_tree

    hp = {"num_layers": "20", "image_shape": "3,24,24", "mini_batch_size": "8", "epochs": "1"}
    root = tmp_path / "ml"
    write_example_tree(root, per_class=8, val_per_class=4, image_size=32, hyperparameters=hp)
    run = train(
        root, "--algorithm", "image-classification", SAGEMAKER_CV_EXPORT_ONNX="1", SAGEMAKER_CV_SEED=1
    )
    assert run.code == 0, run.out[-3000:]
    assert "SAGEMAKER_CV_EXPORT_ONNX=1: exporting the model" in run.out and "max |dp|" in run.out
    assert "model.onnx" in run.model_files
    bad = train(root, "--algorithm", "image-classification", SAGEMAKER_CV_EXPORT_ONNX="maybe")
    assert bad.code == 2 and "SAGEMAKER_CV_EXPORT_ONNX='maybe': expected 1" in bad.failure
    # a rerun without the export leaves no model.onnx of the earlier model behind
    again = train(root, "--algorithm", "image-classification", SAGEMAKER_CV_SEED=1)
    assert again.code == 0 and "model.onnx" not in again.model_files
