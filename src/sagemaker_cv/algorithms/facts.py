"""What a model archive's `hyperparams.json` says about its network, read without MXNet: the
facts incremental training compares with a new job's hyperparameters (each algorithm's
`archive.archive_facts`). The built-in object detector and segmenter write one, every value a
string."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sagemaker_cv.contract.errors import ClientError
from sagemaker_cv.schema import Schema


def facts_from_hyperparameters(directory: Path, schema: Schema, keys: Sequence[str]) -> dict[str, Any]:
    """The `keys` of the archive's `hyperparams.json`, parsed as a job's hyperparameters are by
    `schema`; a key the file lacks is left out (not compared)."""
    path = directory / "hyperparams.json"
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ClientError(
            f"channel 'model': {path.name} cannot be read ({exc}); "
            f"the archive must come from a {schema.algorithm} job"
        ) from None
    facts = {}
    for key in keys:
        if key in raw:
            try:
                facts[key] = schema.by_name[key].parse(raw[key])
            except ValueError as exc:
                raise ClientError(f"channel 'model': {path.name} {key}={raw[key]!r}: {exc}") from None
    return facts
