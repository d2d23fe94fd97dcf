"""Shared by the weight tests: the tolerance and the differences measured, for the run's summary."""

from __future__ import annotations

import numpy as np

TOLERANCE = 1e-4  # max abs difference, float32
MEASURED: dict[str, float] = {}


def record(name: str, expected: np.ndarray, got: np.ndarray) -> float:
    """The max abs difference between two outputs, remembered for the summary at the end."""
    assert expected.shape == got.shape, (expected.shape, got.shape)
    diff = float(np.abs(expected.astype(np.float64) - got).max())
    MEASURED[name] = max(diff, MEASURED.get(name, 0.0))
    return diff
