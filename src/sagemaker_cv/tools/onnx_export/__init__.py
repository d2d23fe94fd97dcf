"""`sagemaker-cv export-onnx`: a trained model of any of the three algorithms as one ONNX file,
checked in onnxruntime against the model's own MXNet graph before it takes its name.

    sagemaker-cv export-onnx --model DIR|model.tar.gz --output FILE [--opset N] [--size H,W]
                             [--dynamic-batch] [--dynamic-size] [--image FILE ...]

Input `data`: float32 NCHW RGB 0-255 (normalised inside the graph, as in the MXNet symbols);
outputs as the MXNet graph lays them out. The file is written under a temporary name, checked
(onnx.checker, then parity), and renamed only when both pass: a failed export leaves nothing.
A training job with SAGEMAKER_CV_EXPORT_ONNX=1 also writes model.onnx into the model directory
(`JobExport`). docs/onnx.md is the user's page.

Needs the `onnx` extra (onnx, onnxruntime); nothing here imports them, or MXNet, until it runs.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from sagemaker_cv.contract.environment import JobSettings
from sagemaker_cv.contract.errors import ClientError

ENV = "SAGEMAKER_CV_EXPORT_ONNX"
MODEL_FILE = "model.onnx"
DEFAULT_OPSET = 13
RANDOM_INPUTS = 2
#: onnx 1.18 removed onnx.mapping, which MXNet 1.9's exporter imports
ONNX_BELOW = (1, 18)


def export(
    model: Path,
    output: Path,
    *,
    opset: int = DEFAULT_OPSET,
    size: tuple[int, int] | None = None,
    dynamic_batch: bool = False,
    dynamic_size: bool = False,
    images: tuple[Path, ...] = (),
    algorithm: str | None = None,
    say: Callable[[str], None] = print,
) -> list:
    """Export `model` to `output` and check it; the parity comparisons. ClientError for what the
    user can change, ParityError (exit 3) when the file computes something else than MXNet."""
    require_packages()
    from sagemaker_cv.algorithms.trained import open_model
    from sagemaker_cv.contract.files import atomic_path
    from sagemaker_cv.tools.onnx_export import graphs, mx2onnx, parity

    output = Path(output)
    if output.is_dir():
        raise ClientError(f"--output {output}: is a directory; give the path of the .onnx file to write")
    if not output.parent.is_dir():
        raise ClientError(f"--output {output}: directory {output.parent} does not exist")
    with tempfile.TemporaryDirectory(prefix="sagemaker-cv-onnx-") as scratch:
        trained = open_model(Path(model), Path(scratch) / "model", algorithm)
        graph = graphs.load(trained, size, dynamic_size)
        pictures = [(f"image {p.name}", parity.read_image(p, graph.size)) for p in images]
        params, notes = mx2onnx.batchnorm_params(graph.symbol, graph.params)
        for note in notes:
            say(f"Note: {note}")
        converted = mx2onnx.convert(
            graph.symbol, params, (1, 3, *graph.size), opset, dynamic_batch, dynamic_size
        )
        randoms = parity.random_images(RANDOM_INPUTS, graph.size)
        inputs = [(f"random {i + 1}", image) for i, image in enumerate(randoms)] + pictures
        if dynamic_size:  # and a size other than the one exported
            other = (graph.size[0] + 8, graph.size[1] + 16)
            inputs.append((f"random at {other[0]}x{other[1]}", parity.random_images(1, other, seed=1)[0]))
        with atomic_path(output) as temp:
            import onnx

            onnx.save(converted, str(temp))
            onnx.checker.check_model(str(temp))
            shape = "x".join(
                ["N" if dynamic_batch else "1", "3", *(("H", "W") if dynamic_size else map(str, graph.size))]
            )
            say(
                f"Exported {trained.algorithm.name} (opset {opset}, input data {shape}); "
                f"onnx.checker passed; parity with MXNet in onnxruntime:"
            )
            results = parity.check(temp, graph, inputs, dynamic_batch)
            for result in results:
                say(f"  {result.line()}")
            failed = [r for r in results if r.problems]
            if failed:
                raise parity.ParityError(
                    f"ONNX export of {model}: onnxruntime's outputs differ from MXNet's "
                    f"({'; '.join(f'{r.input}: {r.problems[0]}' for r in failed)}); tolerances "
                    f"{parity.TOLERANCES}; nothing was written"
                )
    say(f"Wrote {output}")
    return results


def require_packages() -> None:
    """ClientError unless onnx (of a version MXNet's exporter runs with) and onnxruntime import."""
    missing = []
    for name in ("onnx", "onnxruntime"):
        try:
            module = __import__(name)
        except ImportError:
            missing.append(name)
            continue
        if name == "onnx" and tuple(int(p) for p in module.__version__.split(".")[:2]) >= ONNX_BELOW:
            raise ClientError(
                f"onnx {module.__version__} is installed; MXNet 1.9's ONNX exporter needs onnx < 1.18 "
                "(it uses onnx.mapping): pip install 'sagemaker-cv[onnx]'"
            )
    if missing:
        raise ClientError(
            f"ONNX export needs {' and '.join(missing)}: pip install 'sagemaker-cv[onnx]', or build the "
            "image with --build-arg EXTRAS=onnx (docs/onnx.md)"
        )


@dataclass(frozen=True)
class JobExport:
    """SAGEMAKER_CV_EXPORT_ONNX=1 in a training job: model.onnx beside the model files, written by
    the primary host once training has ended (not after a stop: SageMaker kills the container
    120 s after SIGTERM). A failed export fails the job with its reason: the user asked for the
    file, and a job that completes without it would fail later, far from the cause."""

    enabled: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> JobExport:
        return cls(JobSettings.from_env(environ).export_onnx)

    def check(self) -> None:
        """Before training: a missing package fails the job in seconds, not after the last epoch."""
        if self.enabled:
            require_packages()

    def after_training(self, job) -> None:
        from sagemaker_cv.contract import logs

        log = logs.get()
        model_dir = job.paths.model_dir
        log.info("%s=1: exporting the model to %s", ENV, model_dir / MODEL_FILE)
        pictures = job_pictures(job.paths)
        export(model_dir, model_dir / MODEL_FILE, algorithm=job.algorithm.name, images=pictures, say=log.info)


def job_pictures(paths, count: int = 2) -> tuple[Path, ...]:
    """A few of the job's own pictures for the parity check: the first JPEG/PNG files of the
    validation channel, else the train channel (File mode with image files; RecordIO and Pipe
    mode give none, and random pictures are checked alone)."""
    for channel in ("validation", "train"):
        directory = paths.channel(channel)
        if directory.is_dir():
            found = sorted(
                p
                for p in directory.rglob("*")
                if p.suffix.lower() in (".jpg", ".jpeg", ".png") and p.is_file()
            )
            if found:
                return tuple(found[:count])
    return ()


# ---- the command --------------------------------------------------------------------------------------


def add_arguments(sub: argparse._SubParsersAction) -> None:
    """The `export-onnx` subcommand of the CLI."""
    p = sub.add_parser(
        "export-onnx",
        help="write a trained model as ONNX and check it in onnxruntime (needs the onnx extra)",
        description="Export a model directory or model.tar.gz of any of the three algorithms to ONNX; "
        "the file is kept only when onnx.checker and the parity check in onnxruntime pass (exit 3: parity "
        "failed, 2: the model or an argument cannot be exported).",
    )
    p.add_argument("--model", type=Path, required=True, help="a model directory or model.tar.gz")
    p.add_argument("--output", type=Path, required=True, help="the .onnx file to write")
    p.add_argument("--algorithm", help="confirm the algorithm that wrote the model (default: from its files)")
    p.add_argument(
        "--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset: 12 or 13 (default {DEFAULT_OPSET})"
    )
    p.add_argument(
        "--size",
        help="input HEIGHT,WIDTH (default: the model's image_shape; crop_size for segmentation); "
        "object detection takes only its image_shape",
    )
    p.add_argument("--dynamic-batch", action="store_true", help="any batch size (default: batch 1)")
    p.add_argument(
        "--dynamic-size",
        action="store_true",
        help="any height and width (image classification; the others refuse it and say why)",
    )
    p.add_argument(
        "--image",
        type=Path,
        action="append",
        default=[],
        help="a picture to check parity on as well (repeatable); random pictures are always checked",
    )


def parse_size(text: str) -> tuple[int, int]:
    """`--size H,W` (or one number for a square)."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) not in (1, 2) or not all(p.isdigit() for p in parts):
        raise ClientError(f"--size {text!r}: expected HEIGHT,WIDTH in pixels, e.g. 224,224")
    height, width = int(parts[0]), int(parts[-1])
    if not (16 <= height <= 4096 and 16 <= width <= 4096):
        raise ClientError(f"--size {text!r}: expected a height and width in [16, 4096]")
    return height, width


def run(args: argparse.Namespace) -> int:
    from sagemaker_cv.tools.onnx_export.parity import ParityError

    try:
        export(
            args.model,
            args.output,
            opset=args.opset,
            size=parse_size(args.size) if args.size is not None else None,
            dynamic_batch=args.dynamic_batch,
            dynamic_size=args.dynamic_size,
            images=tuple(args.image),
            algorithm=args.algorithm,
        )
        return 0
    except ClientError as exc:
        print(f"sagemaker-cv export-onnx: {exc}", file=sys.stderr)
        return exc.exit_code
    except ParityError as exc:
        print(f"sagemaker-cv export-onnx: parity failed: {exc}", file=sys.stderr)
        return exc.exit_code
