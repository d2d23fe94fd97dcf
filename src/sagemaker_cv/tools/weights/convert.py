"""Checkpoint -> GluonCV parameters, as pure functions of names, shapes and numpy arrays.

A conversion is a plan: for every parameter of the GluonCV network, the checkpoint tensor it is
made from, the shape that tensor must have, and how it is changed (nothing but its name, for the
ResNets). Planning and checking read only names and shapes, so a wrong or partial checkpoint is
refused, with the first mismatching tensors named, before any array is touched or a file written.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

Shape = tuple[int, ...]
Transform = Callable[[np.ndarray], np.ndarray]

# Problems listed in a refusal: enough to recognise the wrong file, short enough for a terminal.
SHOWN_PROBLEMS = 6


def _same(a: np.ndarray) -> np.ndarray:
    return a


@dataclass(frozen=True)
class Take:
    """One GluonCV parameter made from checkpoint tensor `source` of shape `shape`."""

    source: str
    shape: Shape
    transform: Transform = field(default=_same, compare=False)


@dataclass(frozen=True)
class Plan:
    """target parameter -> Take; `keep`: parameters that keep GluonCV's initial value (the
    checkpoint has no counterpart); `ignored`: checkpoint tensors left out on purpose."""

    takes: dict[str, Take]
    keep: frozenset[str] = frozenset()
    ignored: Callable[[str], bool] = field(default=lambda name: False, compare=False)


def mismatches(plan: Plan, expected: Mapping[str, Shape], source: Mapping[str, Shape]) -> list[str]:
    """Every way the checkpoint (names -> shapes) fails the plan for a network whose parameters
    have the `expected` shapes: wrong shapes first, then missing tensors, then tensors left over."""
    wrong, missing = [], []
    for target in expected:
        if target in plan.keep:
            continue
        take = plan.takes.get(target)
        if take is None:  # a bug in a plan, not in the user's file
            raise ValueError(f"the plan has no source for {target}")
        via = "" if take.source == target else f" (GluonCV's {target})"
        if take.source not in source:
            missing.append(f"{take.source}: missing, expected shape {_fmt(take.shape)}{via}")
        elif tuple(source[take.source]) != take.shape:
            wrong.append(
                f"{take.source}: expected shape {_fmt(take.shape)}, got {_fmt(source[take.source])}{via}"
            )
    used = {take.source for take in plan.takes.values()}
    extra = [
        f"{name}: unexpected tensor of shape {_fmt(shape)}"
        for name, shape in source.items()
        if name not in used and not plan.ignored(name)
    ]
    return wrong + missing + extra


def refusal(checkpoint: str, network: str, problems: list[str]) -> str:
    shown = problems[:SHOWN_PROBLEMS]
    more = f"; and {len(problems) - len(shown)} more" if len(problems) > len(shown) else ""
    return f"{checkpoint} does not fit {network} ({len(problems)} problem(s)): {'; '.join(shown)}{more}"


def apply(plan: Plan, tensors: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The converted float32 arrays of every planned parameter (call after `mismatches` is empty)."""
    return {
        target: np.ascontiguousarray(take.transform(tensors[take.source]), dtype=np.float32)
        for target, take in plan.takes.items()
    }


def _fmt(shape) -> str:
    return str(tuple(int(d) for d in shape))


# ---- ResNet v1b / v1s from timm (and torchvision) ------------------------------------------------

# Both frameworks name the blocks alike (conv1, layer1.0.conv2, layer1.0.downsample.0, fc); only the
# batch-norm parameters differ. PyTorch's `num_batches_tracked` has no use in inference.
_BATCH_NORM = {".gamma": ".weight", ".beta": ".bias"}


def resnet_plan(expected: Mapping[str, Shape]) -> Plan:
    takes = {}
    for target, shape in expected.items():
        source = target
        for gluon, torch in _BATCH_NORM.items():
            if target.endswith(gluon):
                source = target[: -len(gluon)] + torch
        takes[target] = Take(source, tuple(shape))
    return Plan(takes, ignored=lambda name: name.endswith(".num_batches_tracked"))


# ---- SSD's VGG-16 base from torchvision's VGG-16 ------------------------------------------------

# VGG-16's fully connected fc6 (25088 -> 4096, i.e. a 7x7 convolution over pool5) and fc7
# (4096 -> 4096) become SSD's fc6 (3x3, 1024 channels, dilation 6) and fc7 (1x1, 1024) by keeping
# every 4th output (and fc7 input) channel and every 3rd tap of the 7x7 kernel, as DeepLab-LargeFOV
# and the SSD paper made their "reduced" VGG. The taps kept were 6 pixels apart at fc6's input
# resolution once pool5 keeps stride 1 (2 x 3), hence dilation 6. timm stores fc6/fc7 as
# convolutions (pre_logits.fc1/fc2), torchvision as linear layers (classifier.0/3).
FC6, FC7 = (4096, 512, 7, 7), (4096, 4096, 1, 1)
FC6_STEPS, FC7_STEPS = (4, 1, 3, 3), (4, 4, 1, 1)
_FC_NAMES = {"fc6": ("pre_logits.fc1", "classifier.0"), "fc7": ("pre_logits.fc2", "classifier.3")}
# Where torchvision's (and timm's) VGG-16 keeps its 13 convolutions in `features`.
VGG16_CONVS = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
# The ImageNet classifier (fc8), which SSD replaces with its own heads.
_VGG_IGNORED = re.compile(r"(head\.fc|classifier\.6)\.(weight|bias)$")
# Parameters SSD adds to VGG: the input scale constant and conv4_3's L2-normalisation scale
# (initial value 20, from the SSD paper); they keep GluonCV's values.
VGG_ATROUS_KEEP = frozenset({"init_scale", "norm4.scale"})


def decimate(array: np.ndarray, steps: tuple[int, ...]) -> np.ndarray:
    """Every steps[i]-th element along axis i, starting with the first."""
    return array[tuple(slice(None, None, s) for s in steps)]


def vgg_atrous_plan(
    expected: Mapping[str, Shape], source: Mapping[str, Shape], init_scale: np.ndarray
) -> Plan:
    """The plan for GluonCV's VGGAtrous base (`stages.S.I.weight|bias`, S = 0..4 the 13 VGG
    convolutions in order, S = 5 fc6 and fc7) from a VGG-16 checkpoint (`features.N.*`).

    GluonCV's base multiplies its (ImageNet-normalised) input by `init_scale` before conv1_1, as its
    Caffe weights expected 0-255 pixels; torchvision's conv1_1 expects the normalised input itself,
    so its weights are divided by that scale per input channel."""
    targets = [t[: -len(".weight")] for t in expected if t.startswith("stages.") and t.endswith(".weight")]
    convs = [t for t in targets if not t.startswith("stages.5.")]
    fcs = [t for t in targets if t.startswith("stages.5.")]
    if len(convs) != len(VGG16_CONVS) or len(fcs) != 2:
        raise ValueError(f"not a VGG-16 atrous base: {len(convs)} convolutions and {len(fcs)} fc layers")
    takes: dict[str, Take] = {}
    scale = np.asarray(init_scale, dtype=np.float32).reshape(1, -1, 1, 1)
    for i, (target, index) in enumerate(zip(convs, VGG16_CONVS)):
        layer = f"features.{index}"
        transform = (lambda w: w / scale) if i == 0 else _same
        takes[target + ".weight"] = Take(layer + ".weight", tuple(expected[target + ".weight"]), transform)
        takes[target + ".bias"] = Take(layer + ".bias", tuple(expected[target + ".bias"]))
    for target, (key, full, steps) in zip(fcs, (("fc6", FC6, FC6_STEPS), ("fc7", FC7, FC7_STEPS))):
        conv_name, linear_name = _FC_NAMES[key]
        # Accept either layout: the check compares against the one the checkpoint uses.
        linear = linear_name + ".weight" in source and conv_name + ".weight" not in source
        name, shape = (linear_name, (full[0], int(np.prod(full[1:])))) if linear else (conv_name, full)
        takes[target + ".weight"] = Take(
            name + ".weight", shape, lambda w, full=full, steps=steps: decimate(w.reshape(full), steps)
        )
        takes[target + ".bias"] = Take(name + ".bias", (full[0],), lambda b, steps=steps: b[:: steps[0]])
    return Plan(takes, keep=VGG_ATROUS_KEEP, ignored=lambda n: bool(_VGG_IGNORED.search(n)))
