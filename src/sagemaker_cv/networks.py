"""ResNet classifiers that take raw 0-255 pixels: the network normalises its own input, so the
exported model needs only resize and crop from its users."""

from __future__ import annotations

import glob
import os
from pathlib import Path

import mxnet as mx
from mxnet.gluon import HybridBlock, nn

from sagemaker_cv.errors import ClientError

IMAGENET_MEAN = (123.68, 116.779, 103.939)
IMAGENET_STD = (58.393, 57.12, 57.375)


class Normalized(HybridBlock):
    """(x - mean) / std in front of a backbone; mean and std are constants saved with the model."""

    def __init__(self, backbone: HybridBlock, channels: int, **kwargs):
        super().__init__(**kwargs)
        mean = IMAGENET_MEAN if channels == 3 else (sum(IMAGENET_MEAN) / 3,)
        std = IMAGENET_STD if channels == 3 else (sum(IMAGENET_STD) / 3,)
        with self.name_scope():
            self.mean = self.params.get_constant("mean", mx.nd.array(mean).reshape((1, channels, 1, 1)))
            self.std = self.params.get_constant("std", mx.nd.array(std).reshape((1, channels, 1, 1)))
            self.backbone = backbone

    def hybrid_forward(self, F, x, mean, std):
        return self.backbone(F.broadcast_div(F.broadcast_sub(x, mean), std))


class WithActivation(HybridBlock):
    """The exported predictor: probabilities (softmax, or sigmoid per class for multi-label)."""

    def __init__(self, net: HybridBlock, activation: str, **kwargs):
        super().__init__(**kwargs)
        self.activation = activation
        with self.name_scope():
            self.net = net

    def hybrid_forward(self, F, x):
        logits = self.net(x)
        return F.sigmoid(logits) if self.activation == "sigmoid" else F.softmax(logits)


def resnet(num_layers: int, classes: int) -> HybridBlock:
    """ResNet v1 of any depth the built-in offers (the zoo lacks 200 and CIFAR 32/44 by name)."""
    from gluoncv.model_zoo.cifarresnet import CIFARBasicBlockV1, CIFARResNetV1
    from mxnet.gluon.model_zoo.vision.resnet import BottleneckV1, ResNetV1, get_resnet

    if num_layers in (18, 34, 50, 101, 152):
        return get_resnet(1, num_layers, classes=classes)
    if num_layers == 200:
        return ResNetV1(BottleneckV1, [3, 24, 36, 3], [64, 256, 512, 1024, 2048], classes=classes)
    if (num_layers - 2) % 6 == 0:
        n = (num_layers - 2) // 6
        return CIFARResNetV1(CIFARBasicBlockV1, [n] * 3, [16, 16, 32, 64], classes=classes)
    raise ValueError(f"no ResNet with {num_layers} layers")


def models_dir() -> Path:
    return Path(os.environ.get("MXNET_HOME", os.path.join(os.path.expanduser("~"), ".mxnet"))) / "models"


def pretrained_file(name: str) -> Path:
    """A GluonCV params file for `name` (e.g. resnet50_v1-cc729d95.params) under $MXNET_HOME/models.
    Never downloads: the model store is unreachable from training jobs (and from network isolation)."""
    directory = models_dir()
    found = sorted(glob.glob(str(directory / f"{name}-*.params"))) + sorted(
        glob.glob(str(directory / f"{name}.params"))
    )
    if not found:
        source = (
            f"GluonCV's {name} params file"
            if name != "resnet200_v1"  # GluonCV publishes no 200-layer weights
            else "ImageNet weights of mxnet.gluon's ResNetV1 with bottleneck blocks [3, 24, 36, 3] (saved with save_parameters)"
        )
        raise ClientError(
            f"use_pretrained_model=1: no pretrained weights {name}-*.params in {directory}; put {source} "
            "there (bake it into the image under docker/weights/, or set MXNET_HOME), or set use_pretrained_model=0"
        )
    return Path(found[-1])


def classification_network(
    num_layers: int, classes: int, channels: int, pretrained: bool, ctx: list
) -> HybridBlock:
    """The training network: normalisation + ResNet, initialised from scratch or from ImageNet
    weights with only the output layer re-initialised."""
    init = mx.init.Xavier(rnd_type="gaussian", factor_type="in", magnitude=2)
    if pretrained:
        backbone = resnet(num_layers, 1000)
        path = pretrained_file(f"resnet{num_layers}_v1")
        try:
            backbone.load_parameters(str(path), ctx=ctx)
        except (mx.base.MXNetError, AssertionError, ValueError) as exc:
            raise ClientError(
                f"pretrained weights {path}: do not fit resnet{num_layers}_v1 ({str(exc)[:200]})"
            ) from None
        with backbone.name_scope():
            backbone.output = nn.Dense(classes)
        backbone.output.initialize(init, ctx=ctx)
    else:
        backbone = resnet(num_layers, classes)
    net = Normalized(backbone, channels)
    for param in net.collect_params().values():
        if param._data is None:  # keep loaded weights; initialise constants and fresh layers
            param.initialize(ctx=ctx, default_init=init)
    return net


def materialize(net: HybridBlock, image_shape: tuple[int, int, int], ctx) -> None:
    """Give every parameter its shape and value now (Gluon defers that to the first forward pass),
    so the model can be saved before a batch has run. One float32 forward in inference mode: before
    any float16 cast, which CPUs could not run."""
    net(mx.nd.zeros((1, *image_shape), ctx=ctx))


def export_symbol_params(block: HybridBlock, prefix: Path, epoch: int, ctx) -> tuple[Path, Path]:
    """Write `prefix-symbol.json` and `prefix-%04d.params` (float32, input named `data`), loadable
    with mx.mod.Module and gluon.SymbolBlock.imports."""
    sym = block(mx.sym.var("data"))
    params = block.collect_params()
    save = {}
    for name in sym.list_arguments():
        if name != "data":
            save["arg:" + name] = params[name].data(ctx).astype("float32").as_in_context(mx.cpu())
    for name in sym.list_auxiliary_states():
        save["aux:" + name] = params[name].data(ctx).astype("float32").as_in_context(mx.cpu())
    sym_path = Path(f"{prefix}-symbol.json")
    params_path = Path(f"{prefix}-{epoch:04d}.params")
    sym.save(str(sym_path))
    mx.nd.save(str(params_path), save)
    return sym_path, params_path
