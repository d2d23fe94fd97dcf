"""The MXNet side of an import: GluonCV's networks as the trainers build them, the shapes their
params files must hold, writing such a file, and loading it back the way GluonCV does."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import mxnet as mx
import numpy as np
from mxnet.gluon import HybridBlock

from sagemaker_cv.tools.weights.convert import Plan, Shape, resnet_plan, vgg_atrous_plan
from sagemaker_cv.training.export import structural_params

VGG_ATROUS = "vgg16_atrous"
# GluonCV's ResNet v1b/v1s names that sources exist for: one plan serves them all.
RESNETS = ("resnet18_v1b", "resnet34_v1b", "resnet50_v1b", "resnet101_v1b", "resnet152_v1b")
RESNETS += ("resnet50_v1s", "resnet101_v1s")
NETWORKS = (*RESNETS, VGG_ATROUS)


def build(network: str) -> HybridBlock:
    """The network whose parameters the file holds, built and initialised as GluonCV does it
    (parameters of unknown shape stay deferred, so this allocates little)."""
    if network == VGG_ATROUS:
        from gluoncv.model_zoo.ssd.vgg_atrous import get_vgg_atrous_extractor

        # ssd_300_vgg16_atrous's base: the file holds everything but SSD's extra layers, which
        # GluonCV leaves to their initialiser (load_parameters with allow_missing=True).
        net = get_vgg_atrous_extractor(16, 300)
    else:
        from gluoncv.model_zoo import get_model

        net = get_model(network)
    net.initialize()
    return net


def _in_file(network: str, key: str) -> bool:
    return not (network == VGG_ATROUS and key.startswith("extras."))


def expected_shapes(network: str, net: HybridBlock) -> dict[str, Shape]:
    """Every parameter the params file must hold, with its shape, by symbolic shape inference
    (no forward pass: instant even for VGG-16 at 300 px)."""
    out = net(mx.sym.var("data"))
    sym = mx.sym.Group(list(out)) if isinstance(out, (list, tuple)) else out
    size = 300 if network == VGG_ATROUS else 224
    args, _, aux = sym.infer_shape(data=(1, 3, size, size))
    shapes = dict(zip(sym.list_arguments(), args))
    shapes.update(zip(sym.list_auxiliary_states(), aux))
    return {
        key: tuple(shapes[param.name])
        for key, param in structural_params(net).items()
        if _in_file(network, key)
    }


def plan(network: str, net: HybridBlock, expected: Mapping[str, Shape], source: Mapping[str, Shape]) -> Plan:
    if network == VGG_ATROUS:
        return vgg_atrous_plan(expected, source, init_scale=net.init_scale.data().asnumpy())
    if network in RESNETS:
        return resnet_plan(expected)
    raise ValueError(f"no conversion for {network}")


def initial_values(net: HybridBlock, names) -> dict[str, np.ndarray]:
    """GluonCV's initial values of the parameters a checkpoint has no counterpart for."""
    params = structural_params(net)
    return {name: params[name].data().asnumpy() for name in names}


def write_params(arrays: Mapping[str, np.ndarray], path: Path) -> None:
    """A params file as Block.save_parameters writes one: structural names, float32 arrays."""
    mx.nd.save(str(path), {name: mx.nd.array(a, dtype="float32") for name, a in arrays.items()})


def verify(network: str, path: Path) -> None:
    """Load the file into a fresh network exactly as GluonCV's model zoo does; raises if it refuses."""
    net = build(network)
    if network == VGG_ATROUS:
        net.load_parameters(str(path), allow_missing=True)
        saved = set(mx.nd.load(str(path)))
        base = {key for key in structural_params(net) if _in_file(network, key)}
        if saved != base:  # allow_missing would hide a base parameter missing from the file
            raise RuntimeError(f"{path}: holds {sorted(saved ^ base)[:5]} unlike GluonCV's VGG atrous base")
    else:
        net.load_parameters(str(path))
