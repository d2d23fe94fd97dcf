"""What a semantic-segmentation model.tar.gz says about its network, read without MXNet: the
facts incremental training compares with the job's hyperparameters.

The built-in and this image both write `model_algo-1` (GluonCV parameters of
`{FCN,PSPNet,DeepLabV3}(nclass, backbone, aux=True)`) and `hyperparams.json` (every value a
string); the network's shape follows from algorithm, backbone and num_classes, and crop_size
fixes the heads' resizes, so those four come from hyperparams.json.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sagemaker_cv.contract.errors import ClientError

NAME = "semantic-segmentation"
MODEL = "model_algo-1"
KEYS = ("algorithm", "backbone", "num_classes", "crop_size")


def model_file(directory: Path) -> Path:
    """The archive's `model_algo-1`; a ClientError naming what the archive holds instead."""
    missing = [n for n in (MODEL, "hyperparams.json") if not (directory / n).is_file()]
    if missing:
        present = (
            sorted(p.name for p in directory.rglob("*") if p.is_file())[:10] if directory.is_dir() else []
        )
        raise ClientError(
            f"channel 'model': the archive lacks {', '.join(missing)} (it holds {', '.join(present) or 'nothing'}); "
            f"it must be the model.tar.gz of a {NAME} job"
        )
    return directory / MODEL


def archive_facts(directory: Path) -> dict[str, Any]:
    from sagemaker_cv.algorithms.facts import facts_from_hyperparameters
    from sagemaker_cv.algorithms.segmentation.schema import SCHEMA

    model_file(directory)
    return facts_from_hyperparameters(directory, SCHEMA, KEYS)
