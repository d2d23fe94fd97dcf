"""A trained model as serving, `predict`, `evaluate` and the exporters meet it: a model directory
or a model.tar.gz, from this image's jobs or from SageMaker's built-in algorithms.

Which algorithm wrote it is read from its files (each algorithm's `model_marker`), so nothing has
to be told twice; `--algorithm` only confirms it. Framework-free: the predictors load the files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from sagemaker_cv.algorithms import NAMES, REGISTRY, Algorithm, get
from sagemaker_cv.contract import model_archive
from sagemaker_cv.contract.errors import ClientError


@dataclass(frozen=True)
class TrainedModel:
    algorithm: Algorithm
    directory: Path
    #: the model's hyperparams.json (every value a string); empty when it has none (the
    #: classifier's archive carries none: its facts come from its symbol and model-shapes.json)
    hyperparameters: dict[str, str] = field(default_factory=dict)


def recognise(directory: Path) -> list[Algorithm]:
    """The algorithms whose marker file is in `directory`."""
    return [a for a in REGISTRY.values() if a.model_marker and (directory / a.model_marker).is_file()]


def open_model(path: Path, unpack_to: Path, algorithm: str | None = None) -> TrainedModel:
    """`path` (a model directory or a model.tar.gz, unpacked into `unpack_to` with the archive
    guard) as a TrainedModel. `algorithm`, when given, must be the one the files say."""
    path = Path(path)
    if path.is_file():
        directory = model_archive.extract(path, unpack_to, origin=f"model {path}")
    elif path.is_dir():
        directory = path
    else:
        raise ClientError(
            f"model {path}: no such file or directory; expected a model directory or model.tar.gz"
        )
    found = recognise(directory)
    expected = ", ".join(f"{a.model_marker} ({a.name})" for a in REGISTRY.values())
    if not found:
        present = sorted(p.name for p in directory.iterdir())[:10]
        raise ClientError(
            f"model {path}: no model file of a known algorithm (it holds {', '.join(present) or 'nothing'}); "
            f"expected one of {expected}"
        )
    if algorithm is not None:
        wanted = get(algorithm)
        if wanted not in found:
            raise ClientError(
                f"model {path}: algorithm {algorithm!r} was asked for, but the files are those of "
                f"{' and '.join(a.name for a in found)} (expected {wanted.model_marker} for {algorithm})"
            )
        found = [wanted]
    if len(found) > 1:
        raise ClientError(
            f"model {path}: holds the files of {' and '.join(a.name for a in found)}; "
            f"name one with --algorithm (one of {', '.join(NAMES)})"
        )
    return TrainedModel(found[0], directory, _hyperparameters(directory, path))


def _hyperparameters(directory: Path, path: Path) -> dict[str, str]:
    file = directory / "hyperparams.json"
    if not file.is_file():
        return {}
    try:
        raw = json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        raise ClientError(f"model {path}: hyperparams.json cannot be read ({exc})") from None
    if not isinstance(raw, dict):
        raise ClientError(f"model {path}: hyperparams.json holds {type(raw).__name__}, expected an object")
    return {str(k): str(v) for k, v in raw.items()}
