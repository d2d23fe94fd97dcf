"""Metric sums kept on the devices and read only when logged.

Reading a device value waits for the device, so a trainer that read its metrics after every batch
would stall the pipeline (measured: 0.89 of a bare Gluon loop). The sums stay NDArrays until
`values` or `since_mark` is called.
"""

from __future__ import annotations

from typing import Any

from sagemaker_cv.training.task import Metrics


class Tally:
    """Named sums and counts; `values` gives the means, `since_mark` the means since its last call."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.sums: dict[tuple[str, int], Any] = {}  # (name, device) -> a device scalar (or a float)
        self.counts: dict[str, int] = {}
        self.marked: dict[str, tuple[float, int]] = {}

    def add(self, name: str, device: int, value: Any, count: int) -> None:
        """Add a device-side sum over `count` samples (no waiting)."""
        key = (name, device)
        self.sums[key] = value if key not in self.sums else self.sums[key] + value
        self.counts[name] = self.counts.get(name, 0) + count

    def _totals(self) -> dict[str, tuple[float, int]]:
        totals: dict[str, float] = {}
        for (name, _), value in self.sums.items():
            totals[name] = totals.get(name, 0.0) + _scalar(value)
        return {name: (total, self.counts[name]) for name, total in totals.items()}

    def total(self, name: str) -> tuple[float, int] | None:
        """(sum, count) of `name` since the last reset, None before its first value (waits for the devices)."""
        return self._totals().get(name)

    def values(self, names: list[str]) -> Metrics:
        totals = self._totals()
        return [(n, totals[n][0] / totals[n][1]) for n in names if n in totals and totals[n][1]]

    def since_mark(self, names: list[str]) -> Metrics:
        totals = self._totals()
        out = []
        for n in names:
            if n in totals:
                s0, c0 = self.marked.get(n, (0.0, 0))
                if totals[n][1] > c0:
                    out.append((n, (totals[n][0] - s0) / (totals[n][1] - c0)))
        self.marked = totals
        return out


def _scalar(value: Any) -> float:
    return float(value.asscalar()) if hasattr(value, "asscalar") else float(value)
