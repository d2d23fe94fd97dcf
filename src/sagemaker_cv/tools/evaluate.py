"""`sagemaker-cv evaluate`: a trained model's figures on one channel of an /opt/ml tree, overall
and per class, as a table and a JSON report.

    sagemaker-cv evaluate --model DIR|model.tar.gz --ml-root T [--channel validation]
                          [--output FILE] [--algorithm A]

The channel is read by the algorithm's own Task, as training reads its validation channel: the
same readers, checks and ClientErrors, in any format training accepts (File mode). The model is
loaded as the `model` channel's start model is (incremental training), after the same check that
its network is the one the tree's hyperparameters describe. The overall figures are the Task's
`validation_scores()`, so they are the numbers the training log reports for the same model and data; the
per-class figures come from the algorithm's `evaluation` module (`Algorithm.evaluation`),
from a second pass over the data.

The evaluated channel is read as the validation split. A tree with a File-mode `train` channel is
checked whole, exactly as `validate` checks it; a tree without one needs none: the evaluated
channel then stands in for the training split too (and is checked as such, without the count rules
that only training needs).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sagemaker_cv.algorithms.trained import TrainedModel, open_model
from sagemaker_cv.contract import logs
from sagemaker_cv.contract.config import ResourceConfig
from sagemaker_cv.contract.errors import ClientError
from sagemaker_cv.contract.paths import DEFAULT_ROOT, MLPaths
from sagemaker_cv.schema import HyperParameters
from sagemaker_cv.training.job import Job

SPLITS = ("train", "validation")
log = logs.get("evaluate")


@dataclass(frozen=True)
class ChannelAliases(MLPaths):
    """An ml tree whose split channels (`train`, `validation_lst`, ...) are read from other
    channels' directories: readers name the user's real directories in their messages."""

    aliases: tuple[tuple[str, str], ...] = ()

    def channel(self, name: str) -> Path:
        return super().channel(dict(self.aliases).get(name, name))


def evaluation_job(job: Job, channel: str) -> Job:
    """`job` on one host, with `channel` (and its companions, e.g. `test_lst` for `test`) as the
    validation split. The tree's File-mode `train` channel stays (so the tree is checked exactly
    as `validate` checks it); without one, `channel` stands in for it too."""
    record = job.algorithm
    known = ", ".join(n for n in job.channels if n != "model") or "none"
    if channel not in job.channels or channel == "model":
        raise ClientError(
            f"--channel {channel!r}: {job.paths.data_dir} has no such data channel (it has {known})"
        )
    if job.channels[channel].input_mode != "File":
        raise ClientError(
            f"--channel {channel!r}: TrainingInputMode={job.channels[channel].input_mode}; evaluate reads "
            f"files: give it in File mode (its files in {job.paths.channel(channel)})"
        )
    train = job.channels.get("train")
    splits = ("validation",) if train is not None and train.input_mode == "File" else SPLITS
    # Companion channels by the algorithm's own names: validation_lst, validation_annotation, ...
    suffixes = [
        c.name.removeprefix("validation_") for c in record.channels if c.name.startswith("validation_")
    ]

    def family(name: str) -> set[str]:
        return {name, *(f"{name}_{x}" for x in suffixes)}

    # Out go the splits replaced, the evaluated channel under its own name (`test` is no channel of
    # the algorithm) and the model channel; the rest (a kept train split, a label map) stays.
    out = family("validation") | family(channel) | {"model"}
    out = out | family("train") if "train" in splits else out - family("train")
    channels = {n: c for n, c in job.channels.items() if n not in out}
    aliases = []
    for split in splits:
        for suffix in ("", *(f"_{s}" for s in suffixes)):
            if f"{channel}{suffix}" in job.channels:
                channels[f"{split}{suffix}"] = replace(
                    job.channels[f"{channel}{suffix}"], name=f"{split}{suffix}"
                )
                aliases.append((f"{split}{suffix}", f"{channel}{suffix}"))
    host = job.resource.current_host
    return replace(
        job,
        paths=ChannelAliases(job.paths.root, tuple(aliases)),
        channels=channels,
        resource=ResourceConfig(current_host=host, hosts=(host,)),
    )


class _Evaluating:
    """What evaluation changes in an algorithm's Task: nothing trains, so the rules about the
    training data (at least a batch; num_training_samples; detection: objects to learn) do not
    apply, and a batch never needs more images than the channel holds."""

    def check_training_count(self, prepared) -> None:
        pass

    def setup(self, prepared) -> None:
        count = prepared.counts.get("train")
        if count and count < self.hp.mini_batch_size:
            self.hp = HyperParameters({**self.hp, "mini_batch_size": count})
        super().setup(prepared)


def _start_model(model: TrainedModel, job: Job, origin: Path):
    from sagemaker_cv.training import incremental

    spec = model.algorithm.incremental
    if spec is None:
        raise ClientError(f"model {origin}: {model.algorithm.name} models cannot be loaded in this version")
    facts = spec.read_facts(model.directory)
    found = incremental.mismatches(facts, job.hyperparameters, spec.keys)
    if found:
        raise ClientError(
            [
                f"model {origin}: its network differs from the one {job.paths.hyperparameters} describes; "
                "these hyperparameters must be the model's",
                *[line.replace("the model in the model channel", "the model") for line in found],
            ]
        )
    return incremental.StartModel(model.directory, facts, f"model {origin}")


def evaluate(
    model_path: Path, ml_root: Path, channel: str = "validation", algorithm: str | None = None
) -> dict:
    """The report: overall figures as validation computes them, and the per-class figures."""
    from sagemaker_cv.training import runner
    from sagemaker_cv.training.framework import require_mxnet
    from sagemaker_cv.training.incremental import PREPARED_KEY
    from sagemaker_cv.training.scratch import scratch_space

    require_mxnet("evaluate")
    paths = MLPaths(ml_root)
    with scratch_space(paths) as scratch:
        model = open_model(model_path, scratch / "model", algorithm)
        record = model.algorithm
        job = evaluation_job(runner.load(paths, record), channel)
        task_class = record.task_class()
        evaluating = type(f"Evaluating{task_class.__name__}", (_Evaluating, task_class), {})
        task = evaluating(job, runner.plan_for(job), scratch)
        try:
            prepared = task.check_data()
            start = _start_model(model, job, model_path)
            task.setup(replace(prepared, data={**prepared.data, PREPARED_KEY: start}))
            overall = dict(task.validation_scores() or [])
            details = record.evaluate(task)
        finally:
            task.close()
    return {
        "algorithm": record.name,
        "model": str(model_path),
        "channel": channel,
        "samples": prepared.counts.get("validation"),
        "validation": overall,
        **details,
    }


# ---- the table ------------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def table(rows: list[dict[str, Any]]) -> str:
    columns = list(rows[0])
    cells = [columns, *[[_cell(r[c]) for c in columns] for r in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    return "\n".join("  ".join(cell.rjust(w) for cell, w in zip(row, widths)) for row in cells)


def format_report(report: dict) -> str:
    lines = [
        f"{report['algorithm']} model {report['model']} on channel {report['channel']!r} "
        f"({report['samples']} images)",
        "",
        "As validation computes it (the training log's figures):",
        *[f"  {name}: {_cell(value)}" for name, value in report["validation"].items()],
    ]
    if report.get("figures"):
        lines += ["", "From the predictions:", *[f"  {k}: {_cell(v)}" for k, v in report["figures"].items()]]
    if report.get("classes"):
        lines += ["", "Per class:", table(report["classes"])]
    matrix = report.get("confusion_matrix")
    if matrix and len(matrix) <= 20:  # wider ones stay in the JSON report
        corner = "true \\ predicted"
        rows = [{corner: i, **{str(j): v for j, v in enumerate(row)}} for i, row in enumerate(matrix)]
        lines += ["", "Confusion matrix (rows: true class, columns: predicted class):", table(rows)]
    return "\n".join(lines) + "\n"


# ---- the command ----------------------------------------------------------------------------------


def add_arguments(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="a trained model's figures per class on a channel of an /opt/ml tree")
    p.add_argument("--model", type=Path, required=True, help="a model directory or model.tar.gz")
    p.add_argument(
        "--ml-root",
        type=Path,
        default=Path(os.environ.get("SAGEMAKER_CV_ML_ROOT", str(DEFAULT_ROOT))),
        help="the /opt/ml tree whose hyperparameters and channel are used (default: $SAGEMAKER_CV_ML_ROOT or /opt/ml)",
    )
    p.add_argument("--channel", default="validation", help="the channel to evaluate on (default: validation)")
    p.add_argument(
        "--output", type=Path, help="the JSON report (default: ML_ROOT/output/data/evaluation-CHANNEL.json)"
    )
    p.add_argument("--algorithm", help="confirm the model's algorithm (it is read from the model's files)")


def run(args: argparse.Namespace) -> int:
    logs.setup()
    try:
        report = evaluate(args.model, args.ml_root, args.channel, args.algorithm)
        output = args.output or MLPaths(args.ml_root).output_data_dir / f"evaluation-{args.channel}.json"
        try:
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_text(json.dumps(report, indent=1) + "\n")
        except OSError as exc:
            raise ClientError(f"--output {output}: cannot be written ({exc.strerror or exc})") from None
    except ClientError as exc:
        print(f"sagemaker-cv evaluate: {exc}", file=sys.stderr)
        return exc.exit_code
    sys.stdout.write(format_report(report))
    print(f"\nReport written to {output}")
    return 0
