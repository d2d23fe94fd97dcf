"""Pretrained weights are local files under $MXNET_HOME/models, never downloads: GluonCV's model
store has been unreachable since 2024, and training jobs often run under network isolation.

The files are GluonCV params files made by `sagemaker-cv weights import` from the maintained public
checkpoints below (`make weights` downloads and imports them all into docker/weights/, which the
image bakes into $MXNET_HOME/models). Framework-free: `weights list` reads this without MXNet.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path

from sagemaker_cv.contract.errors import ClientError

HUB = "https://huggingface.co"


@dataclass(frozen=True)
class Source:
    """Where the ImageNet weights of one GluonCV network can be had today."""

    repo: str  # a Hugging Face hub repository
    licence: str  # as its model card states it
    origin: str  # who trained the weights
    filename: str = "model.safetensors"
    note: str = ""  # how the weights are changed on import, when they are

    @property
    def url(self) -> str:
        return f"{HUB}/{self.repo}/resolve/main/{self.filename}"


# timm republishes GluonCV's own ImageNet weights ("gluon_in1k"): the same tensors under PyTorch
# names, so these imports change names only. v1b is timm's plain ResNet; v1s its deep-stem ResNet.
_GLUON = "GluonCV (republished by timm)"
SOURCES: dict[str, Source] = {
    **{
        f"resnet{n}_v1b": Source(f"timm/resnet{n}.gluon_in1k", "Apache-2.0", _GLUON)
        for n in (18, 34, 50, 101, 152)
    },
    "resnet50_v1s": Source("timm/resnet50s.gluon_in1k", "Apache-2.0", _GLUON),
    "resnet101_v1s": Source("timm/resnet101s.gluon_in1k", "Apache-2.0", _GLUON),
    # GluonCV's own vgg16_atrous came from the SSD authors' Caffe model, which is not published in a
    # maintained place; torchvision's VGG-16 is, and SSD's fc6/fc7 are made from it as the SSD paper did.
    "vgg16_atrous": Source(
        "timm/vgg16.tv_in1k",
        "BSD-3-Clause",
        "torchvision (republished by timm)",
        note="fc6/fc7 decimated into SSD's dilated 1024-channel fc6/fc7",
    ),
}


def models_dir() -> Path:
    return Path(os.environ.get("MXNET_HOME", os.path.join(os.path.expanduser("~"), ".mxnet"))) / "models"


def find_file(name: str, directory: Path | None = None) -> Path | None:
    """GluonCV's params file for network `name` in `directory` (default: models_dir()), or None.

    GluonCV names its files `<name>-<short sha1>.params`; a bare `<name>.params` is accepted too."""
    directory = models_dir() if directory is None else directory
    found = sorted(glob.glob(str(directory / f"{glob.escape(name)}-*.params"))) + sorted(
        glob.glob(str(directory / f"{glob.escape(name)}.params"))
    )
    return Path(found[-1]) if found else None


def pretrained_file(name: str, source: str | None = None) -> Path:
    """The params file for GluonCV's network `name` (e.g. resnet50_v1b-0ecdba34.params).

    `source` overrides the text that says where to get the file when it is missing."""
    path = find_file(name)
    if path is None:
        raise ClientError(
            f"use_pretrained_model=1: no pretrained weights {name}-*.params in {models_dir()}; "
            f"{source or how_to_get(name)}, or set use_pretrained_model=0"
        )
    return path


def how_to_get(name: str) -> str:
    src = SOURCES.get(name)
    if src is None:
        return f"put GluonCV's {name} params file there"
    return (
        f"download {src.url} and run `sagemaker-cv weights import FILE --network {name}` "
        "(`make weights` bakes every network into the image)"
    )
