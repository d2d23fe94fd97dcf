"""ResNet classifiers that take raw 0-255 pixels: the network normalises its own input, so the
exported model needs only resize and crop from its users."""

from __future__ import annotations

import mxnet as mx
from mxnet.gluon import HybridBlock, nn

from sagemaker_cv.algorithms.classification.schema import PRETRAINED_NETWORKS
from sagemaker_cv.contract.errors import ClientError
from sagemaker_cv.training.export import initialize_missing
from sagemaker_cv.training.pretrained import pretrained_file

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
    """The ResNet of each depth the built-in offers.

    ImageNet-size depths are GluonCV's ResNet v1b (the stride-2 in the 3x3 convolution of a
    bottleneck, as in torchvision's ResNet): the variant whose ImageNet weights are published today
    (see training/pretrained.py). 200 is the same family (the zoo has no 200 by name); the CIFAR
    depths are GluonCV's CIFAR ResNet v1."""
    from gluoncv.model_zoo import get_model
    from gluoncv.model_zoo.cifarresnet import CIFARBasicBlockV1, CIFARResNetV1
    from gluoncv.model_zoo.resnetv1b import BottleneckV1b, ResNetV1b

    if num_layers in (18, 34, 50, 101, 152):
        return get_model(f"resnet{num_layers}_v1b", classes=classes)
    if num_layers == 200:
        return ResNetV1b(BottleneckV1b, [3, 24, 36, 3], classes=classes)
    if (num_layers - 2) % 6 == 0:
        n = (num_layers - 2) // 6
        return CIFARResNetV1(CIFARBasicBlockV1, [n] * 3, [16, 16, 32, 64], classes=classes)
    raise ValueError(f"no ResNet with {num_layers} layers")


def classification_network(
    num_layers: int, classes: int, channels: int, pretrained: bool, ctx: list
) -> HybridBlock:
    """The training network: normalisation + ResNet, initialised from scratch or from ImageNet
    weights with only the output layer re-initialised."""
    init = mx.init.Xavier(rnd_type="gaussian", factor_type="in", magnitude=2)
    if pretrained:
        name = PRETRAINED_NETWORKS[num_layers]  # the schema accepts no other depth with pretrained=1
        backbone = resnet(num_layers, 1000)
        path = pretrained_file(name)
        try:
            backbone.load_parameters(str(path), ctx=ctx)
        except (mx.base.MXNetError, AssertionError, ValueError) as exc:
            raise ClientError(
                f"pretrained weights {path}: do not fit {name} ({str(exc)[:200]}); "
                f"re-import them with `sagemaker-cv weights import FILE --network {name}`"
            ) from None
        with backbone.name_scope():
            backbone.fc = nn.Dense(classes, in_units=backbone.fc.weight.shape[1])
        backbone.fc.initialize(init, ctx=ctx)
    else:
        backbone = resnet(num_layers, classes)
    net = Normalized(backbone, channels)
    initialize_missing(net, init, ctx)  # keep loaded weights; initialise constants and fresh layers
    return net
