"""The built-in's layer names for freeze_layer_pattern: its example `^(conv1_|conv2_).*` names
layers of the MXNet VGG-16 symbol (conv1_1 ... conv5_3, fc6, fc7) and the MXNet ResNet-50 symbol
(conv0, stage1_unit1_conv1, ...). Our base networks are GluonCV's; these functions name their
parameters as the built-in's symbols do. Pure string functions, no framework.
"""

from __future__ import annotations

import re

_RESNET_PARAM = {"running_mean": "moving_mean", "running_var": "moving_var"}


def vgg_builtin_name(key: str) -> str | None:
    """The MXNet VGG-16 symbol's parameter name for a structural key of GluonCV's VGG16 atrous
    extractor (`stages.1.2.weight` -> `conv2_2_weight`; the dilated stage is fc6 and fc7)."""
    match = re.fullmatch(r"stages\.(\d)\.(\d+)\.(weight|bias)", key)
    if not match:
        return None
    stage, index, kind = int(match.group(1)), int(match.group(2)), match.group(3)
    layer = index // 2  # convolutions alternate with their ReLU
    name = f"fc{6 + layer}" if stage == 5 else f"conv{stage + 1}_{layer + 1}"
    return f"{name}_{kind}"


def resnet_builtin_name(key: str) -> str | None:
    """The MXNet ResNet-50 symbol's parameter name for a structural key of GluonCV's ResNet-50 v1b
    (`conv1.weight` -> `conv0_weight`, `layer2.0.bn1.gamma` -> `stage2_unit1_bn1_gamma`, the
    projection shortcut `layer1.0.downsample.0` -> `stage1_unit1_sc`)."""
    *path, kind = key.split(".")
    kind = _RESNET_PARAM.get(kind, kind)
    if path == ["conv1"]:
        return f"conv0_{kind}"
    if path == ["bn1"]:
        return f"bn0_{kind}"
    match = re.fullmatch(r"layer(\d)\.(\d+)\.(.+)", ".".join(path))
    if not match:
        return None
    unit = f"stage{match.group(1)}_unit{int(match.group(2)) + 1}"
    layer = {"downsample.0": "sc", "downsample.1": "sc_bn"}.get(match.group(3), match.group(3))
    return f"{unit}_{layer}_{kind}"


def select_frozen(names: dict[str, str], pattern: str) -> list[str]:
    """Our parameter names (keys of `names`, which maps them to the built-in's) that `pattern`
    matches by either name (re.search: the pattern anchors itself if it wants to)."""
    regex = re.compile(pattern)
    return [ours for ours, builtin in names.items() if regex.search(builtin) or regex.search(ours)]


def layer_name(param: str) -> str:
    """The layer a built-in parameter name belongs to (`conv1_1_weight` -> `conv1_1`)."""
    return re.sub(r"_(weight|bias|gamma|beta|moving_mean|moving_var)$", "", param)
