"""What an image-classification model.tar.gz says about its network, read from its JSON files
alone (no MXNet): the facts incremental training compares with the job's hyperparameters.

The built-in writes no hyperparameters into its archive, so they come from the files it does
write: `model-shapes.json` gives image_shape, the symbol gives num_classes (the output layer's
width) and num_layers (a ResNet's depth counts its convolutions and its output layer, not the
1x1 shortcut convolutions, which read the same input as the first convolution of their block).
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
