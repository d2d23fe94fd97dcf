"""What an image-classification model.tar.gz says about its network, read from its JSON files
alone (no MXNet): the facts incremental training compares with the job's hyperparameters.

The built-in writes no hyperparameters into its archive, so they come from the files it does
write: `model-shapes.json` gives image_shape, the symbol gives num_classes (the output layer's
width) and num_layers (a ResNet's depth counts its convolutions and its output layer, not the
1x1 shortcut convolutions, which read the same input as the first convolution of their block).

This image's jobs add one key the built-in does not write, `resize` in model-shapes.json's `data`
entry: the shorter side validation's images had before its central crop, which serving resizes
every request image to (the file names and the built-in's keys stay as they are).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from sagemaker_cv.contract.errors import ClientError

PREFIX = "image-classification"
_PARAMS = re.compile(rf"^{PREFIX}-(\d{{4}})\.params$")


def model_files(directory: Path) -> tuple[Path, Path, Path]:
    """(symbol, params, shapes) of an extracted archive; the params of the highest epoch when
    checkpoint_frequency kept several."""
    symbol, shapes = directory / f"{PREFIX}-symbol.json", directory / "model-shapes.json"
    params = sorted(p for p in directory.iterdir() if _PARAMS.match(p.name)) if directory.is_dir() else []
    missing = [p.name for p in (symbol, shapes) if not p.is_file()] + (
        [] if params else [f"{PREFIX}-NNNN.params"]
    )
    if missing:
        present = sorted(p.name for p in directory.rglob("*") if p.is_file())[:10]
        raise ClientError(
            f"channel 'model': the archive lacks {', '.join(missing)} (it holds {', '.join(present) or 'nothing'}); "
            "it must be the model.tar.gz of an image-classification job"
        )
    return symbol, params[-1], shapes


def symbol_facts(graph: dict) -> dict[str, Any]:
    """num_classes and num_layers of a ResNet classifier's symbol JSON."""
    nodes = graph.get("nodes", [])
    convs = [n for n in nodes if n.get("op") == "Convolution"]
    dense = [n for n in nodes if n.get("op") == "FullyConnected"]
    facts: dict[str, Any] = {}
    if dense:
        facts["num_classes"] = int(dense[-1].get("attrs", {}).get("num_hidden", -1))
    by_input: dict[int, int] = {}
    for conv in convs:
        source = conv["inputs"][0][0]
        by_input[source] = by_input.get(source, 0) + 1
    shortcuts = sum(count - 1 for count in by_input.values())
    facts["num_layers"] = len(convs) - shortcuts + len(dense)
    return facts


def output_activation(symbol: Path) -> str | None:
    """The operator of the symbol's output node (softmax, or sigmoid for multi-label)."""
    graph = json.loads(symbol.read_text())
    heads = graph.get("heads") or [[len(graph["nodes"]) - 1]]
    return graph["nodes"][heads[0][0]].get("op")


def archive_facts(directory: Path) -> dict[str, Any]:
    symbol, _, shapes = model_files(directory)
    try:
        facts = symbol_facts(json.loads(symbol.read_text()))
        shape = json.loads(shapes.read_text())[-1]["shape"]
        facts["image_shape"] = tuple(int(x) for x in shape[1:])
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise ClientError(f"channel 'model': {symbol.name} or {shapes.name} cannot be read ({exc})") from None
    return facts


def validation_side(
    resize: int | None, shorter_sides: tuple[int, int] | None, image_shape: tuple[int, int, int]
) -> int | None:
    """The shorter side validation's images have before its central crop: the job's `resize`; a
    job without one crops its images as they are stored, so the shorter side they all share
    (`im2rec --resize 40` makes every one 40); None when they differ, or when it is below the
    crop's longer side (an image turned the other way could not be cropped)."""
    if resize:
        return resize
    if shorter_sides is None or shorter_sides[0] != shorter_sides[1]:
        return None
    return shorter_sides[0] if shorter_sides[0] >= max(image_shape[1:]) else None


def model_shapes(batch_size: int, image_shape: tuple[int, int, int], resize: int | None) -> list[dict]:
    """model-shapes.json's content: the built-in's one entry for the input `data`, with `resize`
    (`validation_side`) when known."""
    entry: dict[str, Any] = {"shape": [batch_size, *image_shape], "name": "data"}
    if resize:
        entry["resize"] = resize
    return [entry]


def recorded_resize(directory: Path, image_shape: tuple[int, int, int]) -> int | None:
    """The `resize` model-shapes.json records (None: the built-in's models, and this image's models
    from jobs whose images had no common shorter side); a ClientError if it is not a usable side
    for crops of `image_shape`."""
    _, _, shapes = model_files(directory)
    try:
        entries = json.loads(shapes.read_text())
        value = next((e.get("resize") for e in entries if e.get("name") == "data"), None)
    except (ValueError, AttributeError, TypeError) as exc:
        raise ClientError(f"model {shapes.name}: cannot be read ({exc})") from None
    if value is None:
        return None
    if type(value) is not int or value < max(image_shape[1:]):
        raise ClientError(
            f"model {shapes.name}: resize={value!r}; expected an integer at least the image_shape height "
            f"and width ({image_shape[1]}, {image_shape[2]}), the shorter side images are resized to before the crop"
        )
    return value
