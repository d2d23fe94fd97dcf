"""Which channels hold what for semantic segmentation, and the refusals of what this version does
not read. The seam for augmented manifests (Pipe mode, `-ref` PNG masks) is here: refused by name
until its reader exists. The `model` channel is training.incremental's."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sagemaker_cv.algorithms.record import unknown_channels
from sagemaker_cv.algorithms.segmentation.channels import CHANNELS
from sagemaker_cv.algorithms.segmentation.dataset import LabelMaps, Split, load_label_maps, scan_split
from sagemaker_cv.algorithms.segmentation.labels import LabelMap
from sagemaker_cv.contract import logs
from sagemaker_cv.contract.config import Channel
from sagemaker_cv.contract.content_types import RECORDIO
from sagemaker_cv.contract.errors import ClientError
from sagemaker_cv.contract.paths import MLPaths

log = logs.get("segmentation")
KNOWN = tuple(c.name for c in CHANNELS)
REQUIRED = tuple(c.name for c in CHANNELS if c.required)


@dataclass(frozen=True)
class Paths:
    images: dict[str, Path]  # split -> image directory
    masks: dict[str, Path]  # split -> label PNG directory
    label_map: Path | None


def resolve(channels: dict[str, Channel], paths: MLPaths) -> Paths:
    """The channel directories; every problem in one ClientError."""
    problems = unknown_channels(channels, CHANNELS, "semantic segmentation")
    for name, ch in channels.items():
        if name == "model" or name not in KNOWN:
            continue
        if ch.input_mode == "Pipe":
            problems.append(
                f"channel {name!r}: Pipe input mode (augmented manifests with -ref PNG masks) is not supported "
                "for semantic-segmentation in this version; use File or FastFile with image and PNG channels"
            )
        elif ch.media_type == RECORDIO or (ch.record_wrapper or "").lower() == "recordio":
            problems.append(
                f"channel {name!r}: RecordIO-wrapped input (augmented manifests) is not supported; use image "
                "and PNG channels"
            )
    for name in REQUIRED:
        if name not in channels:
            problems.append(f"channel {name!r} is missing: semantic segmentation needs {', '.join(REQUIRED)}")
        elif not paths.channel(name).is_dir():
            problems.append(f"channel {name!r}: directory {paths.channel(name)} does not exist")
    if problems:
        raise ClientError(problems)
    return Paths(
        images={s: paths.channel(s) for s in ("train", "validation")},
        masks={s: paths.channel(f"{s}_annotation") for s in ("train", "validation")},
        label_map=paths.channel("label_map") if "label_map" in channels else None,
    )


def label_maps(paths: Paths, num_classes: int) -> LabelMaps:
    maps = load_label_maps(paths.label_map, num_classes)
    for note in maps.notes:
        log.warning(note)
    if not maps.provided:
        log.warning("label maps not provided, using defaults.")
    return maps


def scan(paths: Paths, split: str, label_map: LabelMap, num_classes: int, threads: int | None) -> Split:
    return scan_split(split, paths.images[split], paths.masks[split], label_map, num_classes, threads or None)


def skipped_note(split: Split) -> str:
    listed = ", ".join(split.skipped[:5]) + (" ..." if len(split.skipped) > 5 else "")
    return f"Skipped {len(split.skipped)} file(s) of the {split.name} data that are not readable images: {listed}"
