from __future__ import annotations

import pytest

from sagemaker_cv.tools.demo import write_example_tree


@pytest.fixture
def tree(tmp_path):
    """Factory: a small learnable /opt/ml tree (24 px crops of 32 px images)."""

    def make(content="recordio", per_class=24, val_per_class=10, image_size=32, **kwargs):
        hp = {"epochs": "2", "mini_batch_size": "8"}
        hp.update({k: str(v) for k, v in kwargs.pop("hyperparameters", {}).items()})
        write_example_tree(
            tmp_path / "ml",
            content=content,
            per_class=per_class,
            val_per_class=val_per_class,
            image_size=image_size,
            hyperparameters=hp,
            **kwargs,
        )
        return tmp_path / "ml"

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
