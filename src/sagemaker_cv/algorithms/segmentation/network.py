"""GluonCV's FCN, PSPNet and DeepLabV3 behind a normalising input, and the same network for
images of any size.

* `SegmentationNet` trains: raw RGB 0-255 in, (main, auxiliary) class scores at crop_size out.
  Its `model` is GluonCV's own network, so `model.save_parameters` writes a file that
  `FCN/PSPNet/DeepLabV3(nclass, backbone, aux=True).load_parameters` reads.
* `WholeImage` validates and is exported: the same blocks (the same Parameter objects, nothing is
  copied or rebuilt), traced with resizes that follow the input (`BilinearResize2D(mode='like')`)
  where GluonCV's heads resize to sizes fixed at construction (crop_size for the output, crop_size/8
  in the PSP and ASPP pooling branches). One hybridized graph then takes every image at its own
  size; at crop_size its output equals the training network's exactly. It returns per-pixel class
  probabilities (softmax over classes).
"""

from __future__ import annotations

import contextlib
import io

import mxnet as mx
from mxnet.gluon import HybridBlock, nn

from sagemaker_cv.training.export import initialize_missing, load_pretrained

IMAGENET_MEAN = (123.675, 116.28, 103.53)  # GluonCV's Normalize([.485, .456, .406], [.229, .224, .225]) x 255
IMAGENET_STD = (58.395, 57.12, 57.375)
BACKBONE_BLOCKS = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")
BACKBONES = {"resnet-50": "resnet50", "resnet-101": "resnet101"}


def gluoncv_class(algorithm: str) -> type:
    from gluoncv.model_zoo.deeplabv3 import DeepLabV3
    from gluoncv.model_zoo.fcn import FCN
    from gluoncv.model_zoo.pspnet import PSPNet

    return {"fcn": FCN, "psp": PSPNet, "deeplab": DeepLabV3}[algorithm]


def pretrained_name(backbone: str) -> str:
    """GluonCV's name of the ImageNet network its segmentation models start from."""
    return f"{BACKBONES[backbone]}_v1s"


class Normalize(HybridBlock):
    """(x - mean) / std with ImageNet statistics, as constants saved with the exported graph."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.mean = self.params.get_constant("mean", mx.nd.array(IMAGENET_MEAN).reshape((1, 3, 1, 1)))
            self.std = self.params.get_constant("std", mx.nd.array(IMAGENET_STD).reshape((1, 3, 1, 1)))

    def hybrid_forward(self, F, x, mean, std):
        return F.broadcast_div(F.broadcast_sub(x, mean), std)


class SegmentationNet(HybridBlock):
    """Training network: raw pixels in, GluonCV's (main, aux) outputs at crop_size out."""

    def __init__(self, model: HybridBlock, algorithm: str, **kwargs):
        super().__init__(**kwargs)
        self.algorithm = algorithm
        with self.name_scope():
            self.normalize = Normalize()
            self.model = model

    def hybrid_forward(self, F, x):
        return self.model(self.normalize(x))


def _resize_like(F, x, like):
    return F.contrib.BilinearResize2D(x, like, mode="like")


class WholeImage(HybridBlock):
    """The trained network for inputs of any size: per-pixel class probabilities at the input's size."""

    def __init__(self, net: SegmentationNet, **kwargs):
        super().__init__(**kwargs)
        self.algorithm = net.algorithm
        model = net.model
        with self.name_scope():
            self.normalize = net.normalize
            self.backbone = nn.HybridSequential()  # GluonCV's base_forward, without the aux branch
            for name in BACKBONE_BLOCKS:
                self.backbone.add(getattr(model, name))
            self.head = model.head

    def hybrid_forward(self, F, x):
        features = self.backbone(self.normalize(x))
        head = self.head
        if self.algorithm == "psp":  # _PSPHead: pyramid pooling at 1, 2, 3, 6, then the block
            psp = head.psp
            pooled = [
                _resize_like(F, conv(F.contrib.AdaptiveAvgPooling2D(features, output_size=size)), features)
                for conv, size in ((psp.conv1, 1), (psp.conv2, 2), (psp.conv3, 3), (psp.conv4, 6))
            ]
            scores = head.block(F.concat(features, *pooled, dim=1))
        elif self.algorithm == "deeplab":  # _DeepLabHead: ASPP (4 convolutions + image pooling)
            branches = list(head.aspp.concurent._children.values())
            outputs = [branch(features) for branch in branches[:4]]
            outputs.append(_resize_like(F, branches[4].gap(features), features))
            scores = head.block(head.aspp.project(F.concat(*outputs, dim=1)))
        else:
            scores = head(features)
        return F.softmax(_resize_like(F, scores, x), axis=1)


def segmentation_network(
    algorithm: str,
    backbone: str,
    num_classes: int,
    crop_size: int,
    pretrained: bool,
    ctx: list,
    sync_devices: int = 0,
) -> SegmentationNet:
    """GluonCV's network with aux head, every parameter initialised on `ctx`: the backbone from
    the local ImageNet file when `pretrained`, else Xavier. `sync_devices` > 1 uses SyncBatchNorm
    over that many devices."""
    kwargs = {}
    if sync_devices > 1:
        kwargs = {
            "norm_layer": mx.gluon.contrib.nn.SyncBatchNorm,
            "norm_kwargs": {"num_devices": sync_devices},
        }
    # PSPNet prints its crop size to stdout on construction: keep it out of the job's log.
    with contextlib.redirect_stdout(io.StringIO()):
        model = gluoncv_class(algorithm)(
            num_classes,
            backbone=BACKBONES[backbone],
            aux=True,
            ctx=ctx,
            pretrained_base=False,
            crop_size=crop_size,
            **kwargs,
        )
    if pretrained:
        load_backbone(model, backbone, ctx)
    net = SegmentationNet(model, algorithm)
    # Keeps loaded weights and GluonCV's head initialisation; the rest (and the constants) fresh.
    initialize_missing(net, mx.init.Xavier(rnd_type="gaussian", factor_type="in", magnitude=2), ctx)
    return net


def load_backbone(model: HybridBlock, backbone: str, ctx: list) -> None:
    """Load GluonCV's ImageNet `resnet*_v1s` parameters into the network's backbone blocks (which
    carry the same structural names); the heads keep their fresh initialisation."""
    blocks = set(BACKBONE_BLOCKS)
    load_pretrained(model, pretrained_name(backbone), ctx, lambda key: key.split(".")[0] in blocks)
