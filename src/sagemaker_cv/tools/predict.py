"""`sagemaker-cv predict`: a trained model's answers for image files, without a server.

    sagemaker-cv predict --model DIR|model.tar.gz --input FILE|DIR --output DIR [--accept TYPE]

Every image goes through the handler the server runs for /invocations (`serving.handler.Handler`),
with batch transform's settings: no cap on the response, JSON Lines by default where the algorithm
answers them, `$SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT` honoured. The network runs as one serving
worker runs it here: on the first visible GPU, alone, or on the CPU with the worker's OpenMP thread
count, which MXNet fixes when it is imported. So `<name>.out` holds the bytes a batch transform of
the same file with the same Accept stores (SplitType None: one request per file, output named as
the input's path under the input folder plus `.out`).

An image that cannot be predicted is reported on stderr by name with the server's reason, and the
others go on; the exit code is then 2. Progress goes to stderr every few seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from sagemaker_cv.contract.content_types import X_IMAGE
from sagemaker_cv.contract.errors import ClientError

#: seconds between two progress lines
PROGRESS_SECONDS = 5.0
#: what batch transform sends for a folder of images (any image type reads alike)
CONTENT_TYPE = X_IMAGE


def add_arguments(sub) -> None:
    p = sub.add_parser(
        "predict",
        help="predict image files with a trained model, as batch transform would (no server)",
        description="Writes OUTPUT/<name>.out for each image, the bytes batch transform stores.",
    )
    p.add_argument("--model", type=Path, required=True, help="a model directory or model.tar.gz")
    p.add_argument(
        "--input", type=Path, required=True, help="an image, or a folder of images (read recursively)"
    )
    p.add_argument("--output", type=Path, required=True, help="the folder for the .out files")
    p.add_argument(
        "--accept",
        help="the response format (the Accept header), e.g. application/json;annotation=1 "
        "(default: the algorithm's batch transform default)",
    )
    p.add_argument(
        "--algorithm",
        default=os.environ.get("SAGEMAKER_CV_ALGORITHM"),
        help="confirm the algorithm (default: read from the model's files; $SAGEMAKER_CV_ALGORITHM)",
    )


def run(args: argparse.Namespace) -> int:
    try:
        pairs = inputs(args.input, args.output)
        with tempfile.TemporaryDirectory(prefix="model-") as scratch:
            handler, description = load(args.model, Path(scratch), args.algorithm, args.accept)
            print(
                f"predict: {len(pairs)} file(s) with {description}, answers as "
                f"{handler.chosen(args.accept)}, into {args.output}",
                file=sys.stderr,
                flush=True,
            )
            failed = predict(handler, pairs, args.accept, args.input, args.output)
    except ClientError as exc:
        print(f"sagemaker-cv predict: {'; '.join(exc.problems)}", file=sys.stderr)
        return 2
    return 2 if failed else 0


def inputs(source: Path, output: Path) -> list[tuple[Path, Path]]:
    """(image, its `.out` file) for `source` (a file, or every file under a folder, sorted), the
    output path as batch transform names it: the path under the input folder plus `.out`. Hidden
    names (`.DS_Store`, `.git/`) and the output folder, when it lies inside the input, are left out."""
    if source.is_file():
        return [(source, output / f"{source.name}.out")]
    if not source.is_dir():
        raise ClientError(f"--input {source}: no such file or directory; expected an image or a folder")
    files = []
    skip = output.resolve()
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if any(part.startswith(".") for part in relative.parts) or not path.is_file():
            continue
        if path.resolve().is_relative_to(skip):
            continue
        files.append((path, output / relative.parent / f"{relative.name}.out"))
    if not files:
        raise ClientError(f"--input {source}: the folder holds no files (hidden ones are skipped)")
    return files


def load(model_path: Path, scratch: Path, algorithm: str | None, accept: str | None):
    """The batch handler for the model, loaded as one serving worker here loads it; the
    predictor's description."""
    from sagemaker_cv.algorithms.trained import open_model
    from sagemaker_cv.serving.handler import Handler
    from sagemaker_cv.serving.server import model_source
    from sagemaker_cv.serving.settings import (
        ServerSettings,
        available_cores,
        pinned_environment,
        thread_environment,
        visible_gpus,
    )

    model = open_model(model_source(model_path), scratch, algorithm)
    settings = ServerSettings.from_env(os.environ, cores=available_cores(), gpus=visible_gpus(os.environ))
    # Before MXNet is imported: it reads them once.
    os.environ.update(thread_environment(settings))
    if settings.gpus:
        os.environ.update(pinned_environment(0, os.environ))
    import mxnet as mx

    ctx = mx.gpu(0) if settings.gpus else mx.cpu()
    predictor = model.algorithm.load_predictor(model, ctx)
    handler = Handler(predictor, None, settings.default_accept, batch=True)
    if handler.chosen(accept) is None:
        raise ClientError(f"--accept {accept!r}: this model answers {', '.join(predictor.accepts)}")
    return handler, f"{predictor.description} on {ctx}"


def predict(
    handler,
    pairs: list[tuple[Path, Path]],
    accept: str | None,
    source: Path,
    output: Path,
    *,
    err: TextIO | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Answers every image of `pairs` with `handler`, writes the 200s, reports the others on `err`
    (stderr) by their path under `source`; returns how many failed."""
    err = err or sys.stderr
    progress = Progress(len(pairs), clock)
    failed = 0
    for done, (image, target) in enumerate(pairs, start=1):
        name = image.name if image == source else str(image.relative_to(source))
        try:
            body = image.read_bytes()
        except OSError as exc:
            failed += 1
            print(f"predict: {name}: cannot be read ({exc.strerror or exc})", file=err, flush=True)
            continue
        response = handler(body, CONTENT_TYPE, accept)
        if response.status == 200:
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f".{target.name}.partial")
            partial.write_bytes(response.body)
            partial.replace(target)  # never a half-written .out
        else:
            failed += 1
            print(f"predict: {name}: {reason(response)}", file=err, flush=True)
        line = progress.tick(done)
        if line:
            print(line, file=err, flush=True)
    print(progress.summary(len(pairs) - failed, failed, output), file=err, flush=True)
    return failed


def reason(response) -> str:
    """The server's one-line reason of a refused request."""
    try:
        return f"{json.loads(response.body)['error']} ({response.status})"
    except (ValueError, KeyError, TypeError):
        return f"status {response.status}"


class Progress:
    """Progress lines for `total` files: files done, images per second, the time left; at most one
    per `interval` seconds of `clock`."""

    def __init__(
        self, total: int, clock: Callable[[], float] = time.monotonic, interval: float = PROGRESS_SECONDS
    ):
        self.total, self.clock, self.interval = total, clock, interval
        self.started = self.last = clock()

    def tick(self, done: int) -> str | None:
        now = self.clock()
        if now - self.last < self.interval or done >= self.total:
            return None
        self.last = now
        elapsed = now - self.started
        rate = done / elapsed if elapsed > 0 else 0.0
        left = (self.total - done) / rate if rate > 0 else None
        eta = f"ETA {duration(left)}" if left is not None else "ETA unknown"
        return f"predict: {done}/{self.total} files, {rate:.2f} images/s, {eta}"

    def summary(self, written: int, failed: int, output: Path) -> str:
        elapsed = self.clock() - self.started
        rate = (written + failed) / elapsed if elapsed > 0 else 0.0
        text = f"predict: {written + failed} file(s) in {duration(elapsed)} ({rate:.2f} images/s): {written} written to {output}"
        return text + (f", {failed} failed" if failed else "")


def duration(seconds: float) -> str:
    """`42 s`, `3 min 05 s`, `2 h 07 min`."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
