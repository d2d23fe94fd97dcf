"""`make demo` for any algorithm, read from the registry (each record's `example` writer and its
tuning objective), so the Makefile names no algorithm.

    python -m sagemaker_cv.tools.demos check --algorithm A
    python -m sagemaker_cv.tools.demos write --algorithm A --root demo/ml [writer options...]
    python -m sagemaker_cv.tools.demos best --algorithm A --log demo/train.log

`check` imports nothing but the registry, so it runs before anything is installed or deleted.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from pathlib import Path

from sagemaker_cv import algorithms


def _record(name: str) -> algorithms.Algorithm | None:
    record = algorithms.REGISTRY.get(name)
    if record is None or record.example is None:
        valid = [n for n, a in algorithms.REGISTRY.items() if a.example]
        print(f"make demo: ALGORITHM={name} is not one of: {' '.join(valid)}", file=sys.stderr)
        return None
    return record


def best_line(record: algorithms.Algorithm, log: str) -> str | None:
    """ "Best validation accuracy: 0.93 (chance ...)" from the job's log, read with the regex of
    the algorithm's first tuning objective, as SageMaker reads it; None without any value."""
    objective = record.objectives[0]
    regex = dict(record.metric_definitions)[objective]
    values = [float(v) for v in re.findall(regex, log)]
    if not values:
        return None
    chance = importlib.import_module(record.example).CHANCE
    return f"Best {objective.replace(':', ' ')}: {max(values):g} ({chance})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sagemaker_cv.tools.demos")
    parser.add_argument("action", choices=("check", "write", "best"))
    parser.add_argument("--algorithm", required=True)
    parser.add_argument("--root", type=Path, help="write: where the /opt/ml tree goes")
    parser.add_argument("--log", type=Path, help="best: the job's log")
    args, rest = parser.parse_known_args(argv)
    record = _record(args.algorithm)
    if record is None:
        return 2
    if args.action == "write":
        return importlib.import_module(record.example).main(["--root", str(args.root), *rest])
    if args.action == "best":
        line = best_line(record, args.log.read_text())
        if line is None:
            print(f"make demo: {args.log} holds no {record.objectives[0]} value", file=sys.stderr)
            return 1
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
