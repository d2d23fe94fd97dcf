"""Play SageMaker's side of Pipe mode on a local /opt/ml tree: create the FIFOs
`input/data/<channel>_<n>` one after the other and write each epoch's stream into them.

SageMaker local mode has no Pipe mode, so this is how a Pipe-mode job runs outside SageMaker
(the tests and the benchmark use it too). Two kinds of stream, as SageMaker makes them:

* files (im2rec .rec): the bytes of every file, concatenated, as SageMaker streams the S3 objects
  of a prefix with RecordWrapperType None;
* an augmented manifest (`--manifest FILE --attributes source-ref,class`): for each JSON line, one
  RecordIO record per attribute in that order; a `-ref` attribute's record holds the bytes of the
  file it names (`s3://bucket/key` is read from `--s3-root/bucket/key`), any other the value's
  text (strings as they are, other values as JSON).

    python -m sagemaker_cv.tools.pipefeed --ml-root demo/ml --channel train --epochs 3 demo/train.rec
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from sagemaker_cv.inputs.recordio import frame as encode

BLOCK = 1 << 20


def file_stream(files: Sequence[Path]) -> Iterator[bytes]:
    for path in files:
        with open(path, "rb") as f:
            while block := f.read(BLOCK):
                yield block


def _ref_path(ref: str, base: Path, s3_root: Path | None) -> Path:
    if ref.startswith("s3://"):
        if s3_root is None:
            raise SystemExit(f"pipefeed: {ref}: give --s3-root to map s3:// references to local files")
        return s3_root / ref[len("s3://") :]
    return base / ref


def manifest_stream(
    manifest: Path, attributes: Sequence[str], s3_root: Path | None = None
) -> Iterator[bytes]:
    """The RecordIO stream SageMaker makes of an augmented manifest (RecordWrapperType RecordIO)."""
    with open(manifest, encoding="utf-8") as lines:
        for line in lines:
            if not line.strip():
                continue
            entry = json.loads(line)
            for name in attributes:
                value = entry[name]
                if name.endswith("-ref"):
                    payload = _ref_path(value, manifest.parent, s3_root).read_bytes()
                else:
                    payload = (value if isinstance(value, str) else json.dumps(value)).encode("utf-8")
                yield encode(payload)


def feed(path: Path, blocks: Iterator[bytes]) -> int:
    """Create the FIFO `path`, wait for a reader, write the stream, close and remove it. A reader
    that closes early (it may, once it has what it needs) ends the epoch. Returns bytes written."""
    if path.exists():
        path.unlink()
    os.mkfifo(path)
    written = 0
    try:
        with open(path, "wb", buffering=0) as fifo:  # blocks until the trainer opens it
            for block in blocks:
                view = memoryview(block)
                while view:
                    n = fifo.write(view)
                    written += n
                    view = view[n:]
    except BrokenPipeError:
        pass
    except OSError as exc:
        if exc.errno != errno.EPIPE:
            raise
    finally:
        path.unlink(missing_ok=True)
    return written


def start(ml_root: Path, channel: str, epochs: int, *args: object, **popen) -> subprocess.Popen:
    """Run a feeder in a process of its own, as SageMaker's writer is (tests, benchmarks):
    `args` are further command-line arguments (files, --manifest ...)."""
    command = [sys.executable, "-m", "sagemaker_cv.tools.pipefeed", "--ml-root", str(ml_root)]
    command += ["--channel", channel, "--epochs", str(epochs), *map(str, args)]
    return subprocess.Popen(command, **popen)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sagemaker_cv.tools.pipefeed", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--ml-root", type=Path, required=True)
    parser.add_argument("--channel", required=True)
    parser.add_argument("--epochs", type=int, required=True, help="how many FIFOs to feed, <channel>_0 ...")
    parser.add_argument("--first", type=int, default=0, help="number of the first FIFO")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds to wait before creating each FIFO")
    parser.add_argument("--manifest", type=Path, help="an augmented manifest (JSON lines)")
    parser.add_argument("--attributes", help="AttributeNames, comma-separated (with --manifest)")
    parser.add_argument("--s3-root", type=Path, help="local directory holding s3://bucket/key as bucket/key")
    parser.add_argument("files", nargs="*", type=Path, help="files whose bytes make the stream")
    args = parser.parse_args(argv)
    if bool(args.manifest) == bool(args.files) or (args.manifest and not args.attributes):
        parser.error("give either files, or --manifest with --attributes")
    data_dir = args.ml_root / "input" / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    for n in range(args.first, args.first + args.epochs):
        time.sleep(args.delay)
        if args.manifest:
            blocks = manifest_stream(args.manifest, args.attributes.split(","), args.s3_root)
        else:
            blocks = file_stream(args.files)
        feed(data_dir / f"{args.channel}_{n}", blocks)
    return 0


if __name__ == "__main__":
    sys.exit(main())
