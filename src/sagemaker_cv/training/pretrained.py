"""Pretrained weights are local files under $MXNET_HOME/models, never downloads: GluonCV's model
store is unreachable from training jobs (and from network isolation)."""

from __future__ import annotations

import glob
import os
from pathlib import Path

from sagemaker_cv.contract.errors import ClientError


def models_dir() -> Path:
    return Path(os.environ.get("MXNET_HOME", os.path.join(os.path.expanduser("~"), ".mxnet"))) / "models"


def pretrained_file(name: str, source: str | None = None) -> Path:
    """The params file for GluonCV's network `name` (e.g. resnet50_v1-cc729d95.params).

    `source` says what the file holds when that is not GluonCV's own params file of `name`."""
    directory = models_dir()
    found = sorted(glob.glob(str(directory / f"{name}-*.params"))) + sorted(
        glob.glob(str(directory / f"{name}.params"))
    )
    if not found:
        what = source or f"GluonCV's {name} params file"
        raise ClientError(
            f"use_pretrained_model=1: no pretrained weights {name}-*.params in {directory}; put {what} "
            "there (bake it into the image under docker/weights/, or set MXNET_HOME), or set use_pretrained_model=0"
        )
    return Path(found[-1])
