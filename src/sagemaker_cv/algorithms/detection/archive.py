"""What an object-detection model.tar.gz says about its network, read without MXNet: the facts
incremental training compares with the job's hyperparameters. The built-in and this image both
write `hyperparams.json` (every value a string) beside `model_algo_1-symbol.json` and
`model_algo_1-0000.params`; this image also `class_map.json` when the data named its classes
(fact `class_map`, compared by the task with the new data's)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sagemaker_cv.algorithms.detection import classes
from sagemaker_cv.algorithms.detection.schema import SCHEMA
from sagemaker_cv.algorithms.facts import facts_from_hyperparameters
from sagemaker_cv.contract import files
from sagemaker_cv.contract.errors import ClientError

#: The built-in's artifact names: always this prefix and epoch 0, rewritten whenever mAP improves.
PREFIX = "model_algo_1"
#: the hyperparameters the network's shape depends on; nms_* set the exported graph's suppression
KEYS = ("base_network", "num_classes", "image_shape")
NMS_KEYS = ("nms_threshold", "nms_topk")


def model_files(directory: Path) -> tuple[Path, Path]:
    """(symbol, params) of an extracted archive."""
    symbol, params = directory / f"{PREFIX}-symbol.json", directory / f"{PREFIX}-0000.params"
    missing = [p.name for p in (symbol, params, directory / "hyperparams.json") if not p.is_file()]
    if missing:
        present = (
            sorted(p.name for p in directory.rglob("*") if p.is_file())[:10] if directory.is_dir() else []
        )
        raise ClientError(
            f"channel 'model': the archive lacks {', '.join(missing)} (it holds {', '.join(present) or 'nothing'}); "
            "it must be the model.tar.gz of an object-detection job"
        )
    return symbol, params


def archive_facts(directory: Path) -> dict[str, Any]:
    model_files(directory)
    facts = facts_from_hyperparameters(directory, SCHEMA, KEYS + NMS_KEYS)
    path = directory / classes.FILE
    if path.is_file():
        name = f"the model's {classes.FILE}"
        facts["class_map"] = classes.read_class_map(files.read_json(path, name, limit=1 << 24), name)
    return facts
