"""Whether MXNet is installed: the package installs without it (`pip install sagemaker-cv` has no
framework; the extras and the images bring the CPU or the CUDA build), so the commands that
need no training say so instead of failing on an import."""

from __future__ import annotations

import importlib

from sagemaker_cv.contract.errors import AlgorithmError

HOW_TO_INSTALL = (
    "install it with pip install 'sagemaker-cv[cpu]' (mxnet==1.9.1) or 'sagemaker-cv[gpu]' "
    "(mxnet-cu112==1.9.1, CUDA 11.2), or train in a sagemaker-cv image (make image-cpu, make image)"
)


class FrameworkMissing(AlgorithmError):
    """MXNet is not installed in this Python environment."""


def mxnet_missing() -> str | None:
    """Why MXNet cannot be imported because it is not installed, or None. Other import failures
    (the GPU build without a driver) are left to raise where MXNet is used: they name the library."""
    try:
        importlib.import_module("mxnet")
    except ModuleNotFoundError as exc:
        if exc.name != "mxnet":
            raise
        return f"MXNet is not installed in this Python environment ({exc}); {HOW_TO_INSTALL}"
    return None


def require_mxnet(command: str) -> None:
    problem = mxnet_missing()
    if problem:
        raise FrameworkMissing(f"sagemaker-cv {command} needs MXNet. {problem}")
