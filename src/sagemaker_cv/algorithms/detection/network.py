"""SSD detectors on GluonCV's own blocks, for any image_shape >= 300.

* `vgg-16`: the ssd_300/512_vgg16_atrous family (GluonCV's VGG16 atrous extractor with its extra
  layers; the 512 layout from image_shape 512 on).
* `resnet-50`: the feature layers of GluonCV's ssd_512_resnet50_v1 family (the ends of the third and
  fourth stages, then four expansion layers of 512, 512, 256 and 256 filters) on GluonCV's
  ResNet-50 v1b, the variant whose ImageNet weights are public.

Anchor sizes are GluonCV's presets scaled to image_shape; anchor steps are image_shape divided by
each feature map's size, which reproduces the presets' steps at their own sizes (up to rounding).
The network takes raw RGB 0-255 pixels and normalises them itself.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import mxnet as mx
from mxnet.gluon import HybridBlock

from sagemaker_cv.algorithms.classification.network import Normalized
from sagemaker_cv.algorithms.detection.layers import resnet_builtin_name, select_frozen, vgg_builtin_name
from sagemaker_cv.training.export import initialize_missing, load_pretrained, structural_params

_RATIOS_6 = [[1, 2, 0.5]] + [[1, 2, 0.5, 3, 1.0 / 3]] * 3 + [[1, 2, 0.5]] * 2
_RATIOS_7 = [[1, 2, 0.5]] + [[1, 2, 0.5, 3, 1.0 / 3]] * 4 + [[1, 2, 0.5]] * 2


@dataclass(frozen=True)
class Preset:
    """Anchor layout of a GluonCV SSD preset for custom data sets, at its own input size."""

    size: int
    sizes: tuple[float, ...]
    ratios: list


VGG_300 = Preset(300, (21, 45, 99, 153, 207, 261, 315), _RATIOS_6)
VGG_512 = Preset(512, (51.2, 76.8, 153.6, 230.4, 307.2, 384.0, 460.8, 537.6), _RATIOS_7)
RESNET_512 = Preset(512, (51.2, 133.12, 215.04, 296.96, 378.88, 460.8, 542.72), _RATIOS_6)
RESNET_FILTERS = (512, 512, 256, 256)
#: Where ssd_512_resnet50_v1 taps its base (stage3_activation5, stage4_activation2), named in v1b.
RESNET_OUTPUTS = ("layers3_relu17_fwd", "layers4_relu8_fwd")

BASE_NETWORKS = ("vgg-16", "resnet-50")
WEIGHTS = {"vgg-16": "vgg16_atrous", "resnet-50": "resnet50_v1b"}


# ---- building ---------------------------------------------------------------------------------------


@dataclass
class Detector:
    """The training network and what the task needs to know about it."""

    net: HybridBlock  # Normalized(SSD): raw pixels in; in training (cls_preds, box_preds, anchors)
    ssd: HybridBlock
    feature_maps: list[tuple[int, int]]  # (height, width) of each predicting layer
    base_names: dict[str, str]  # our parameter name -> the built-in's, for the base network
    frozen: list[str]  # our names of the parameters freeze_layer_pattern froze

    def anchors(self, ctx) -> mx.nd.NDArray:
        """(1, N, 4) anchors (center x, center y, width, height, in input pixels), as the network's
        training output carries them, read from its anchor generators without running it."""
        parts = [
            generator.anchors.data(ctx)[:, :, :h, :w, :].reshape((1, -1, 4))
            for generator, (h, w) in zip(self.ssd.anchor_generators, self.feature_maps)
        ]
        return mx.nd.concat(*parts, dim=1)


def _vgg(image_shape: int, pretrained: bool, ctx) -> tuple[HybridBlock, Preset]:
    from gluoncv.model_zoo.ssd.vgg_atrous import get_vgg_atrous_extractor

    preset = VGG_512 if image_shape >= 512 else VGG_300
    features = get_vgg_atrous_extractor(16, preset.size, prefix="vgg16_")
    if pretrained:
        load_pretrained(features, WEIGHTS["vgg-16"], ctx, lambda key: key.startswith(("stages.", "norm4.")))
    return features, preset


def _resnet(image_shape: int, pretrained: bool, ctx) -> tuple[HybridBlock, Preset]:
    from gluoncv.model_zoo import get_model

    base = get_model("resnet50_v1b", pretrained=False)
    if pretrained:
        load_pretrained(base, WEIGHTS["resnet-50"], ctx, lambda key: not key.startswith("fc."))
    return base, RESNET_512


def _expand(base: HybridBlock) -> HybridBlock:
    """ssd_512_resnet50_v1's feature layers on the ResNet: two taps and four expansion layers."""
    from gluoncv.nn.feature import FeatureExpander

    with warnings.catch_warnings():  # SymbolBlock cannot type the input before data arrives: harmless
        warnings.filterwarnings("ignore", message="Cannot decide type")
        return FeatureExpander(
            network=base,
            outputs=list(RESNET_OUTPUTS),
            num_filters=list(RESNET_FILTERS),
            use_1x1_transition=True,
            use_bn=True,
            min_depth=128,
            global_pool=False,
        )


def freeze(base: HybridBlock, names: list[str]) -> None:
    """Stop training these parameters, as MXNet's fixed_param_names does for the built-in: a frozen
    BatchNorm layer keeps its scale and shift but still normalises with the batch's statistics in
    training and updates its running ones (auxiliary states are never "trained")."""
    frozen = set(names)
    for param in base.collect_params().values():
        if param.name in frozen:
            param.grad_req = "null"


def feature_maps(features: HybridBlock, image_shape: int) -> list[tuple[int, int]]:
    """(height, width) of every feature map the base gives for a square input (shape inference only)."""
    outputs = features(mx.sym.var("data"))
    _, shapes, _ = mx.sym.Group(list(outputs)).infer_shape(data=(1, 3, image_shape, image_shape))
    return [tuple(s[2:]) for s in shapes]


def anchor_alloc_size(maps: list[tuple[int, int]]) -> int:
    """The side of the first layer's precomputed anchor map. GluonCV halves it for every further
    layer (never below 16), and each layer slices its anchors from its map, so the map of layer i
    must reach that layer's feature size x 2^i: at image_shape 2049 the ResNet-50's second layer
    is 65 wide, and GluonCV's default from the first layer alone (129 -> 64) fails. Where the
    first layer's size suffices, it is kept (the anchors' shape is part of the saved model)."""
    sides = [max(h, w) for h, w in maps]
    return max([128, sides[0], *(side << i for i, side in enumerate(sides) if side > 16)])


def build_detector(
    base_network: str,
    num_classes: int,
    image_shape: int,
    *,
    pretrained: bool,
    ctx: list,
    nms_threshold: float = 0.45,
    nms_topk: int = 400,
    freeze_pattern: str | None = None,
) -> Detector:
    """The SSD training network, every parameter initialised on `ctx` (base loaded or fresh), with
    the base network's parameters that `freeze_pattern` names frozen."""
    from gluoncv.model_zoo.ssd.ssd import SSD

    make = {"vgg-16": _vgg, "resnet-50": _resnet}[base_network]
    base, preset = make(image_shape, pretrained, ctx)
    to_builtin = vgg_builtin_name if base_network == "vgg-16" else resnet_builtin_name
    params = structural_params(base)
    names = {p.name: to_builtin(key) for key, p in params.items() if to_builtin(key)}
    # Only weights the optimizer would update: BatchNorm running statistics are never trained.
    trainable = {p.name for p in params.values() if p.grad_req != "null"}
    frozen = [n for n in select_frozen(names, freeze_pattern) if n in trainable] if freeze_pattern else []
    freeze(base, frozen)
    features = base if base_network == "vgg-16" else _expand(base)
    maps = feature_maps(features, image_shape)
    scale = image_shape / preset.size
    ssd = SSD(
        None,
        image_shape,
        features=lambda **_: features,  # built above, so its weights can be loaded first
        num_filters=None,
        sizes=[s * scale for s in preset.sizes],
        ratios=preset.ratios,
        steps=[image_shape / w for _, w in maps],
        classes=[str(i) for i in range(num_classes)],
        nms_thresh=nms_threshold,
        nms_topk=nms_topk,
        post_nms=100,
        anchor_alloc_size=anchor_alloc_size(maps),
        prefix="ssd_",
    )
    net = Normalized(ssd, 3, prefix="detector_")
    # net.initialize() semantics (each layer's own initializer, else uniform): what GluonCV's SSD
    # recipes use; a Xavier default slows SSD's start from scratch.
    initialize_missing(net, mx.init.Uniform(), ctx)
    return Detector(net, ssd, maps, names, frozen)


class Detections(HybridBlock):
    """The exported model: raw RGB 0-255 NCHW at image_shape in; out, per image, up to 100 rows of
    [class_id, score, xmin, ymin, xmax, ymax] with corners normalised to [0, 1], best first; empty
    rows are all -1 (the layout of MXNet's MultiBoxDetection, which the built-in's deploy step made)."""

    def __init__(self, net: HybridBlock, image_shape: int, **kwargs):
        super().__init__(**kwargs)
        self.image_shape = float(image_shape)
        with self.name_scope():
            self.net = net

    def hybrid_forward(self, F, x):
        ids, scores, boxes = self.net(x)
        boxes = F.clip(boxes / self.image_shape, 0.0, 1.0)
        valid = F.broadcast_like(ids >= 0, boxes)
        boxes = F.where(valid, boxes, F.ones_like(boxes) * -1)
        return F.concat(ids, scores, boxes, dim=-1)
