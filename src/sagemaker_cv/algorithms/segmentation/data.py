"""Which channels hold what for semantic segmentation. Per split (train, validation), either
File mode, images with a channel of PNG masks (`train` + `train_annotation`), or Pipe mode, an
augmented manifest streaming image and mask pairs (`stream`; no annotation channel). The
`label_map` channel applies to both; the `model` channel is training.incremental's."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sagemaker_cv.algorithms.record import unknown_channels
from sagemaker_cv.algorithms.segmentation.channels import CHANNELS
from sagemaker_cv.algorithms.segmentation.dataset import LabelMaps, Split, load_label_maps, scan_split
from sagemaker_cv.algorithms.segmentation.labels import LabelMap
from sagemaker_cv.algorithms.segmentation.stream import StreamSpec, resolve_streams
from sagemaker_cv.contract import logs
from sagemaker_cv.contract.config import Channel
from sagemaker_cv.contract.content_types import RECORDIO
from sagemaker_cv.contract.errors import ClientError
from sagemaker_cv.contract.paths import MLPaths

log = logs.get("segmentation")
KNOWN = tuple(c.name for c in CHANNELS)
SPLITS = ("train", "validation")


@dataclass(frozen=True)
class Paths:
    images: dict[str, Path]  # split -> image directory (File mode)
    masks: dict[str, Path]  # split -> label PNG directory (File mode)
    label_map: Path | None
    streams: dict[str, StreamSpec] = field(default_factory=dict)  # split -> its Pipe-mode channel


def needed_channels(streams) -> tuple[str, ...]:
    """Both splits; in File mode each with its annotation channel (a stream carries the masks)."""
    return (*SPLITS, *(f"{s}_annotation" for s in SPLITS if s not in streams))


def resolve(channels: dict[str, Channel], paths: MLPaths) -> Paths:
    """The channel directories and streams; every problem in one ClientError."""
    problems = unknown_channels(channels, CHANNELS, "semantic segmentation")
    streams, stream_problems = resolve_streams(channels)
    problems += stream_problems
    for name, ch in channels.items():
        if name == "model" or name not in KNOWN or ch.input_mode == "Pipe":
            continue
        wrapped = (ch.record_wrapper or "None") == "RecordIO"
        if ch.media_type == RECORDIO and not (wrapped and name in SPLITS):  # pipe_splits names those
            problems.append(
                f"channel {name!r} ContentType={ch.content_type!r} in {ch.input_mode} mode: RecordIO is read "
                "only as an augmented manifest in Pipe mode; File mode reads image and PNG channels"
            )
        elif wrapped and name not in SPLITS:
            problems.append(
                f"channel {name!r} RecordWrapperType=RecordIO: augmented manifests stream through the train "
                "and validation channels in Pipe mode; File mode reads image and PNG channels"
            )
    for split in streams:
        if f"{split}_annotation" in channels:
            problems.append(
                f"channel '{split}_annotation': not used while {split!r} streams in Pipe mode, whose augmented "
                "manifest carries the masks; remove the channel"
            )
    needed = needed_channels(streams)
    for name in needed:
        if name not in channels:
            problems.append(f"channel {name!r} is missing: semantic segmentation needs {', '.join(needed)}")
        elif name not in streams and not paths.channel(name).is_dir():
            problems.append(f"channel {name!r}: directory {paths.channel(name)} does not exist")
    if problems:
        raise ClientError(problems)
    files = [s for s in SPLITS if s not in streams]
    return Paths(
        images={s: paths.channel(s) for s in files},
        masks={s: paths.channel(f"{s}_annotation") for s in files},
        label_map=paths.channel("label_map") if "label_map" in channels else None,
        streams=streams,
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
