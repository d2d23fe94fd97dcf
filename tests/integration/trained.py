"""Train once, share: one small reference job per algorithm per test session, through the real
command line, whose ml tree, log, model directory, model.tar.gz and checkpoints feed every test
that only needs "a trained model" (artifact and log formats, reload, a second job on the model
channel, serving, export, evaluation). The `trained` fixture (conftest.py) hands them out.

Each job is the smallest its algorithm allows (the smallest network, tiny images, two epochs, so
there is a best epoch, a checkpoint and an early one), with checkpoints on and the model packed.
They are shared, so they are read-only: a test that changes files works on `copy()`.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from ml_tree import Run, train

from sagemaker_cv.tools.demo import write_example_tree
from sagemaker_cv.tools.detection_demo import write_detection_tree
from sagemaker_cv.tools.segmentation_demo import write_segmentation_tree


def _classification(root: Path) -> None:
    # top_k: the published MetricDefinitions read top-k lines too
    hp = {"num_layers": "20", "image_shape": "3,24,24", "mini_batch_size": "8", "epochs": "2", "top_k": "2"}
    write_example_tree(root, per_class=8, val_per_class=4, image_size=32, hyperparameters=hp)


def _detection(root: Path) -> None:
    # 300 px is the smallest image_shape; ResNet-50 is the cheaper of the two bases on a CPU.
    hp = {"mini_batch_size": "4", "epochs": "2"}
    write_detection_tree(root, train_images=8, val_images=4, max_objects=2, hyperparameters=hp)


def _segmentation(root: Path) -> None:
    hp = {"crop_size": "32", "base_size": "40", "mini_batch_size": "4", "epochs": "2"}
    write_segmentation_tree(root, train=8, validation=4, sizes=(37, 45), hyperparameters=hp)


WRITERS = {
    "image-classification": _classification,
    "object-detection": _detection,
    "semantic-segmentation": _segmentation,
}


@dataclass(frozen=True)
class Trained:
    algorithm: str
    root: Path  # the job's ml tree (input, model, checkpoints, output)
    run: Run  # its exit code and log
    archive: Path  # model.tar.gz of the model directory

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def hyperparameters(self) -> dict[str, str]:
        return json.loads((self.root / "input" / "config" / "hyperparameters.json").read_text())

    def copy(self, destination: Path) -> Path:
        """A private copy of the whole ml tree, for a test that trains again or changes files."""
        return Path(shutil.copytree(self.root, destination, symlinks=True))


def train_reference(algorithm: str, directory: Path) -> Trained:
    root = directory / "ml"
    WRITERS[algorithm](root)
    (root / "input" / "config" / "checkpointconfig.json").write_text(
        json.dumps({"LocalPath": "/opt/ml/checkpoints"})
    )
    archive = directory / "model.tar.gz"
    run = train(root, "--algorithm", algorithm, "--model-archive", str(archive), SAGEMAKER_CV_SEED=1)
    assert run.code == 0, run.out[-3000:]
    return Trained(algorithm, root, run, archive)
