from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sagemaker_cv.tools.demo import write_example_tree


@pytest.fixture(scope="session")
def _written_trees(tmp_path_factory):
    """Example trees already written this session, by their arguments: writing one packs its
    RecordIO files with MXNet's im2rec in a new interpreter (seconds), copying it takes
    milliseconds, and the writer is deterministic."""
    return {}, tmp_path_factory.mktemp("trees")


@pytest.fixture
def tree(tmp_path, _written_trees):
    """Factory: a small learnable /opt/ml tree (24 px crops of 32 px images), the test's own copy."""
    written, cache = _written_trees

    def make(content="recordio", per_class=24, val_per_class=10, image_size=32, **kwargs):
        hp = {"epochs": "2", "mini_batch_size": "8"}
        hp.update({k: str(v) for k, v in kwargs.pop("hyperparameters", {}).items()})
        arguments = dict(
            content=content, per_class=per_class, val_per_class=val_per_class, image_size=image_size
        )
        key = json.dumps([arguments, kwargs, hp], sort_keys=True)
        if key not in written:
            written[key] = cache / str(len(written)) / "ml"
            write_example_tree(written[key], **arguments, hyperparameters=hp, **kwargs)
        return Path(shutil.copytree(written[key], tmp_path / "ml", symlinks=True))

    return make


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """Factory: algorithm -> the session's reference job for it (tests/integration/trained.py),
    trained on first use. Read-only: change a `.copy()`."""
    from trained import train_reference

    done = {}

    def get(algorithm: str):
        if algorithm not in done:
            done[algorithm] = train_reference(algorithm, tmp_path_factory.mktemp(algorithm))
        return done[algorithm]

    return get
