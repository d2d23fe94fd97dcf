"""Train -> artifacts -> reload, once per algorithm, on the session's reference jobs (trained.py):
the job ends well, every published MetricDefinition reads a number from its log, the model
directory holds the built-in's files and nothing else, the archive holds the same, checkpoints
are kept, and the exported graph loads with plain MXNet (Module and Gluon alike) and answers in
the documented layout. The learning tests (slow tier) check that the models learn.

Tier: fast (the three reference jobs take ~2 minutes together and feed other fast tests too)."""

from __future__ import annotations

import fnmatch
import re
import tarfile

import mxnet as mx
import numpy as np
import pytest

from sagemaker_cv import algorithms
from sagemaker_cv.algorithms.trained import open_model
from sagemaker_cv.tools.spec import metric_definitions

pytestmark = pytest.mark.fast

ALGORITHMS = ("image-classification", "object-detection", "semantic-segmentation")
#: the exported graph's prefix, its params epoch and the input size to try
GRAPHS = {
    "image-classification": ("image-classification", None, (24, 24)),
    "object-detection": ("model_algo_1", 0, (300, 300)),
    "semantic-segmentation": ("model_algo-1", 0, (37, 45)),  # any size: an image's own
}


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_the_job_logs_every_metric_and_writes_the_builtins_files(trained, algorithm, tmp_path):
    job = trained(algorithm)
    assert job.run.code == 0 and job.run.failure is None
    record = algorithms.get(algorithm)
    for definition in metric_definitions(record):
        values = re.findall(definition["Regex"], job.run.out)
        assert values, definition["Name"]
        [float(v) for v in values]

    files = job.run.model_files
    # Every file is one the built-in writes (the algorithm's artifact patterns), and each pattern
    # is there: the model directory holds the model and nothing else.
    written = record.artifacts + record.optional_artifacts
    assert all(any(fnmatch.fnmatch(f, pattern) for pattern in written) for f in files), files
    assert all(any(fnmatch.fnmatch(f, pattern) for f in files) for pattern in record.artifacts), files
    with tarfile.open(job.archive) as tar:
        assert sorted(tar.getnames()) == files
    assert sorted(p.name for p in (job.root / "checkpoints").iterdir()) == [
        "checkpoint-0001",
        "checkpoint-0002",
    ]

    # The directory and the archive are recognised as this algorithm's model.
    assert open_model(job.model_dir, tmp_path / "a").algorithm is record
    assert open_model(job.archive, tmp_path / "b").algorithm is record


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_the_exported_graph_reloads_with_plain_mxnet(trained, algorithm):
    job = trained(algorithm)
    prefix, epoch, (height, width) = GRAPHS[algorithm]
    if epoch is None:  # the classifier keeps the best epoch's number
        epoch = int(next(job.model_dir.glob(f"{prefix}-*.params")).stem.rsplit("-", 1)[1])
    path = str(job.model_dir / prefix)
    pixels = mx.nd.array(np.random.default_rng(0).uniform(0, 255, (2, 3, height, width)))

    block = mx.gluon.SymbolBlock.imports(f"{path}-symbol.json", ["data"], f"{path}-{epoch:04d}.params")
    out = block(pixels).asnumpy()
    sym, args, aux = mx.model.load_checkpoint(path, epoch)
    module = mx.mod.Module(sym, data_names=["data"], label_names=None, context=mx.cpu())
    module.bind(data_shapes=[("data", pixels.shape)], for_training=False)
    module.set_params(args, aux)
    module.forward(mx.io.DataBatch([pixels]), is_train=False)
    # The two executors fuse operators differently: decoded box corners (fractions of the image)
    # differ by up to 1.1e-4 (measured; 0.03 px at 300), within the ONNX parity check's 5e-4.
    atol = 5e-4 if algorithm == "object-detection" else 1e-4
    assert np.allclose(module.get_outputs()[0].asnumpy(), out, atol=atol)

    classes = int(job.hyperparameters["num_classes"])
    if algorithm == "object-detection":  # rows of [class, score, xmin, ymin, xmax, ymax]
        assert out.shape[0] == 2 and out.shape[2] == 6
        found = out[out[:, :, 0] >= 0]
        assert np.all((found[:, 0] < classes) & (found[:, 1] >= 0) & (found[:, 1] <= 1))
    else:  # probabilities over the classes (per pixel for segmentation, at the input's size)
        expected = (2, classes) if algorithm == "image-classification" else (2, classes, height, width)
        assert out.shape == expected
        assert np.allclose(out.sum(axis=1), 1, atol=1e-4)
