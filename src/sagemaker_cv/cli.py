"""`sagemaker-cv`: load the job, validate it, dispatch to the algorithm, report the outcome.

This is the only place with a broad `except`: every failure ends as a failure file that starts
with `ClientError:` (the user's input, exit 2) or `AlgorithmError:` (ours, exit 1).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tarfile
import traceback
from pathlib import Path

from sagemaker_cv.contract import logs
from sagemaker_cv.contract.errors import (
    FAILURE_REASON_LIMIT,
    ClientError,
    TrainingInterrupted,
    failure_reason,
)
from sagemaker_cv.contract.files import disk_full, full_disk_named, is_disk_full
from sagemaker_cv.contract.paths import DEFAULT_ROOT, MLPaths
from sagemaker_cv.distributed.roles import WORKER_COMMAND
from sagemaker_cv.serving import server
from sagemaker_cv.tools import evaluate, onnx_export, predict, weights

COMMANDS = (
    "train", "validate", "hyperparameters", "metric-definitions", "spec", "weights", "serve", "export-onnx",
    "evaluate", "predict",
)  # fmt: skip


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sagemaker-cv",
        description="SageMaker-compatible training for image classification, object detection and "
        "semantic segmentation (MXNet + GluonCV).",
    )
    sub = parser.add_subparsers(dest="command")

    from sagemaker_cv.algorithms import NAMES  # the registry imports no framework

    def algorithm_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--algorithm",
            default=os.environ.get("SAGEMAKER_CV_ALGORITHM", NAMES[0]),
            help=f"{', '.join(NAMES)} (default: $SAGEMAKER_CV_ALGORITHM or {NAMES[0]})",
        )

    for name, text in (
        ("train", "train a model (the default command)"),
        ("validate", "check the job without training"),
    ):
        p = sub.add_parser(name, help=text)
        algorithm_arg(p)
        p.add_argument(
            "--ml-root",
            type=Path,
            default=Path(os.environ.get("SAGEMAKER_CV_ML_ROOT", str(DEFAULT_ROOT))),
            help="replaces /opt/ml (default: $SAGEMAKER_CV_ML_ROOT or /opt/ml)",
        )
        if name == "train":
            p.add_argument(
                "--model-archive",
                type=Path,
                help="also pack the model directory into this model.tar.gz (for plain local runs)",
            )
    for name, text in (
        ("hyperparameters", "print the hyperparameter table (markdown)"),
        ("metric-definitions", "print SageMaker MetricDefinitions (JSON)"),
    ):
        algorithm_arg(sub.add_parser(name, help=text))
    p = sub.add_parser("spec", help="print a CreateAlgorithm request (JSON)")
    algorithm_arg(p)
    p.add_argument("--image", required=True, help="the image URI (it trains and serves)")
    p.add_argument(
        "--flavor",
        choices=("gpu", "cpu"),
        default="gpu",
        help="the image's flavor: decides the instance types",
    )
    p.add_argument("--name", help="the algorithm name (default: sagemaker-cv-<algorithm>)")
    weights.add_arguments(sub)
    server.add_arguments(sub)
    onnx_export.add_arguments(sub)
    evaluate.add_arguments(sub)
    predict.add_arguments(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # SageMaker runs `IMAGE train`; SDK v3 local mode passes no argument at all.
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        argv = ["train", *argv]
    if argv[0] == WORKER_COMMAND:  # a worker process of a multi-host job, started by its launcher
        from sagemaker_cv import algorithms
        from sagemaker_cv.distributed import worker

        return worker.main(argv[1:], algorithms.get)
    if argv[0] not in COMMANDS and argv[0] not in ("-h", "--help"):
        print(
            f"sagemaker-cv: unknown command {argv[0]!r}: expected one of {', '.join(COMMANDS)}",
            file=sys.stderr,
        )
        return 2
    args = _parser().parse_args(argv)
    if args.command in ("hyperparameters", "metric-definitions", "spec"):
        return _print_reference(args)
    if args.command == "weights":
        return weights.run(args)
    if args.command == "serve":
        return server.run(args)
    if args.command == "export-onnx":
        return onnx_export.run(args)
    if args.command == "evaluate":
        return evaluate.run(args)
    if args.command == "predict":
        return predict.run(args)
    return _run(args)


def _print_reference(args: argparse.Namespace) -> int:
    from sagemaker_cv import algorithms
    from sagemaker_cv.tools.spec import algorithm_spec, metric_definitions

    if args.algorithm not in algorithms.REGISTRY:
        print(
            f"sagemaker-cv: --algorithm {args.algorithm!r}: expected one of {', '.join(algorithms.NAMES)}",
            file=sys.stderr,
        )
        return 2
    record = algorithms.get(args.algorithm)
    if args.command == "hyperparameters":
        sys.stdout.write(record.schema.markdown_table())
    elif args.command == "metric-definitions":
        print(json.dumps(metric_definitions(record), indent=2))
    else:
        try:
            spec = algorithm_spec(args.algorithm, args.image, name=args.name, flavor=args.flavor)
        except ValueError as exc:
            print(f"sagemaker-cv: {exc}", file=sys.stderr)
            return 2
        print(json.dumps(spec, indent=2))
    return 0


def _run(args: argparse.Namespace) -> int:
    log = logs.setup()
    print(f"Docker entrypoint called with argument(s): {args.command}", flush=True)
    paths = MLPaths(args.ml_root)
    if paths.failure_file.exists():  # left by an earlier run on the same local tree
        paths.failure_file.unlink()
    try:
        from sagemaker_cv import algorithms
        from sagemaker_cv.training import outputs, runner

        algorithm = algorithms.get(args.algorithm)  # resolved once; the record travels down
        onnx = onnx_export.JobExport.from_env(os.environ)
        onnx.check()
        if args.command == "validate":
            runner.validate(paths, algorithm)
        else:
            if args.model_archive:
                outputs.check_archive_target(args.model_archive, paths.model_dir)
            from sagemaker_cv.distributed import launcher

            runner.train(paths, algorithm, launcher.run, after=onnx.after_training if onnx.enabled else None)
            if args.model_archive:
                _archive(paths.model_dir, args.model_archive)
        return 0
    except TrainingInterrupted as stopped:
        # A stop is not a failure (docker stop, StopTrainingJob, MaxRuntime): exit 0, as after training.
        log.info(stopped.before_training())
        return 0
    except BaseException as exc:  # noqa: BLE001 - the one place that turns any fault into a reason
        if isinstance(exc, SystemExit) and exc.code in (0, None):
            raise
        error = _users_to_fix(exc, paths)
        if isinstance(error, ClientError):
            log.error("Customer Error: %s", "; ".join(error.problems))
        if error is not exc:
            log.error("(from %s: %s)", type(exc).__name__, exc)
        elif not isinstance(exc, ClientError):
            log.error("Algorithm Error: %s\n%s", exc, traceback.format_exc())
        _write_failure(paths, failure_reason(error))
        return getattr(error, "exit_code", 1)


OUT_OF_MEMORY = ("out of memory", "std::bad_alloc", "failed to allocate", "cudaerrormemoryallocation")


def _users_to_fix(exc: BaseException, paths: MLPaths) -> BaseException:
    """Resource exhaustion is the user's to fix (a larger instance or volume, smaller settings),
    as the built-ins report it; anything else stays what it is."""
    text = str(exc).lower()
    if isinstance(exc, MemoryError) or (
        type(exc).__name__ == "MXNetError" and any(marker in text for marker in OUT_OF_MEMORY)
    ):
        return ClientError(
            "Out of memory. Please use a larger instance and/or reduce the values of other parameters "
            "(e.g. mini_batch_size, image_shape, num_layers) if applicable"
        )
    if type(exc).__name__ == "MXNetError" and "larger than 2^31 elements" in text:
        return ClientError(
            "A tensor would hold more than 2^31 elements, more than MXNet allows: lower num_classes, "
            "image_shape or mini_batch_size"
        )
    if is_disk_full(exc):
        return disk_full(Path(exc.filename or paths.root), "writing")
    if type(exc).__name__ == "MXNetError" and "write incomplete" in text:
        # MXNet's file writer says no more than this; its files are the model's.
        return disk_full(paths.model_dir, "writing the model")
    return exc


def _write_failure(paths: MLPaths, reason: str) -> None:
    try:
        paths.output_dir.mkdir(parents=True, exist_ok=True)
        paths.failure_file.write_text(
            reason if len(reason) < 64 * FAILURE_REASON_LIMIT else reason[: 64 * FAILURE_REASON_LIMIT]
        )
    except OSError as exc:  # the reason still reaches the log
        logs.get().error("could not write %s: %s", paths.failure_file, exc)


def _archive(model_dir: Path, target: Path) -> None:
    files = sorted(model_dir.iterdir()) if model_dir.is_dir() else []
    if not files:
        logs.get().info("No model files to pack into %s", target)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    with full_disk_named(target, "packing the model archive"), tarfile.open(target, "w:gz") as tar:
        for path in files:
            tar.add(path, arcname=path.name)
    logs.get().info("Model archive written to %s", target)


if __name__ == "__main__":
    raise SystemExit(main())
