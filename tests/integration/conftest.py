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
