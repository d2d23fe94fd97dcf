"""training-curves.png: the metrics file's values against epoch, one panel per quantity.

A quantity is a metric name without its split and without `:epoch` (`train:loss:epoch` and
`validation:accuracy` are `loss` and `accuracy`); a panel shows it for training and validation,
taking the whole-epoch value (`:epoch`) where the log has both kinds. Throughput and progress are
left out: they say how fast, not what was learned.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from sagemaker_cv.contract.files import atomic_path

SPLITS = ("train", "validation")
LEFT_OUT = ("throughput", "progress")


def panels(names: Sequence[str]) -> dict[str, dict[str, str]]:
    """{quantity: {split: metric name}} in the order the names come, e.g. for image
    classification {"accuracy": {"train": "train:accuracy:epoch", "validation": ...}, ...}."""
    out: dict[str, dict[str, str]] = {}
    for name in names:
        split, _, rest = name.partition(":")
        whole_epoch = rest.endswith(":epoch")
        quantity = rest.removesuffix(":epoch")
        if split not in SPLITS or not quantity or quantity in LEFT_OUT:
            continue
        series = out.setdefault(quantity, {})
        if split not in series or whole_epoch:
            series[split] = name
    return out


def plot(records: Sequence[Mapping[str, float]], names: Sequence[str], target: Path) -> None:
    """Draw the panels of `names` from the metrics file's `records` into `target`, replacing it
    whole (a reader never sees a half-written picture)."""
    import matplotlib

    matplotlib.use("Agg")  # no display in a training job
    from matplotlib.figure import Figure

    chosen = {q: s for q, s in panels(names).items() if any(n in r for r in records for n in s.values())}
    if not chosen:
        return
    columns = min(len(chosen), 3)
    rows = -(-len(chosen) // columns)
    figure = Figure(figsize=(3.6 * columns, 2.7 * rows), dpi=80, layout="constrained")
    for i, (quantity, series) in enumerate(chosen.items()):
        axes = figure.add_subplot(rows, columns, i + 1)
        for split, name in series.items():
            points = [(r["epoch"], r[name]) for r in records if name in r]
            if points:
                epochs, values = zip(*points)
                axes.plot(epochs, values, marker="o", markersize=3, label=split)
        axes.set_title(quantity)
        axes.set_xlabel("epoch")
        axes.xaxis.get_major_locator().set_params(integer=True)
        axes.grid(alpha=0.3)
        axes.legend(fontsize="small")
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as temp:
        figure.savefig(temp, format="png")
