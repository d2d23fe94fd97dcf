"""`sagemaker-cv weights list|import` and `make weights`: pretrained weights users can get today.

    sagemaker-cv weights list [--models-dir DIR]
    sagemaker-cv weights import FILE --network NAME [--models-dir DIR]
    python -m sagemaker_cv.tools.weights fetch --models-dir docker/weights [NAME ...]   # downloads

`import` turns a downloaded checkpoint into the GluonCV params file the trainer loads
(`NAME-<sha1 prefix>.params`, as GluonCV names its files); `fetch` downloads the sources from the
Hugging Face hub first (the only code here that uses the network; never run by a training job).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from pathlib import Path

from sagemaker_cv import algorithms
from sagemaker_cv.contract.errors import ClientError
from sagemaker_cv.training.pretrained import SOURCES, find_file, models_dir


def rows(directory: Path) -> list[tuple[str, str, str, str, str]]:
    """(algorithm, setting, network, file in `directory` or "missing", source) for every network
    an algorithm loads with use_pretrained_model=1. Framework-free: no MXNet import."""
    out = []
    for record in algorithms.REGISTRY.values():
        for entry in record.pretrained:
            found = find_file(entry.network, directory)
            src = SOURCES[entry.network]
            source = f"{src.repo} ({src.licence})" + (f"; {src.note}" if src.note else "")
            out.append(
                (record.name, entry.setting, entry.network, found.name if found else "missing", source)
            )
    return out


def format_rows(directory: Path, table: list[tuple[str, ...]]) -> str:
    header = ("algorithm", "setting", "network", f"file in {directory}", "source (licence)")
    widths = [max(len(r[i]) for r in [header, *table]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in [header, *table]]
    return "\n".join(lines) + "\n"


def import_checkpoint(source: Path, network: str, directory: Path) -> Path:
    """Convert `source` into `directory/NAME-<sha1[:8]>.params`, checked against GluonCV's network
    before anything is written and loaded back by GluonCV before it takes the final name. Older
    files of the same network in `directory` are removed, so the trainer finds this one."""
    from sagemaker_cv.tools.weights import convert, gluon
    from sagemaker_cv.tools.weights.checkpoint import Checkpoint

    if network not in gluon.NETWORKS:
        raise ClientError(f"--network {network!r}: expected one of {', '.join(gluon.NETWORKS)}")
    checkpoint = Checkpoint(source)
    net = gluon.build(network)
    expected = gluon.expected_shapes(network, net)
    plan = gluon.plan(network, net, expected, checkpoint.shapes)
    problems = convert.mismatches(plan, expected, checkpoint.shapes)
    if problems:
        raise ClientError(convert.refusal(str(source), network, problems))
    arrays = convert.apply(plan, checkpoint.arrays({t.source for t in plan.takes.values()}))
    arrays.update(gluon.initial_values(net, plan.keep))
    directory.mkdir(parents=True, exist_ok=True)
    partial = directory / f".{network}.params.partial"
    try:
        gluon.write_params(arrays, partial)
        gluon.verify(network, partial)
        target = directory / f"{network}-{_sha1(partial)[:8]}.params"
        for old in directory.glob(f"{network}-*.params"):
            if old != target:
                old.unlink()
        (directory / f"{network}.params").unlink(missing_ok=True)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def fetch(networks: list[str], directory: Path) -> list[Path]:
    """Download each network's source from the Hugging Face hub (cached by huggingface_hub) and
    import it into `directory`."""
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise ClientError("downloading needs huggingface_hub: pip install huggingface_hub") from None
    unknown = [n for n in networks if n not in SOURCES]
    if unknown:
        raise ClientError(f"unknown network(s) {', '.join(unknown)}: expected some of {', '.join(SOURCES)}")
    written = []
    for network in networks or list(SOURCES):
        src = SOURCES[network]
        print(f"{network}: downloading {src.url} ({src.licence})", flush=True)
        path = Path(hf_hub_download(repo_id=src.repo, filename=src.filename))
        written.append(import_checkpoint(path, network, directory))
        print(f"{network}: wrote {written[-1]}", flush=True)
    return written


def _sha1(path: Path) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def add_arguments(sub: argparse._SubParsersAction) -> None:
    """The `weights` subcommand of the CLI."""
    p = sub.add_parser("weights", help="list or import pretrained weights ($MXNET_HOME/models)")
    actions = p.add_subparsers(dest="action", required=True)
    lister = actions.add_parser(
        "list", help="the networks use_pretrained_model=1 loads, and where to get them"
    )
    importer = actions.add_parser("import", help="convert a downloaded checkpoint into a GluonCV params file")
    importer.add_argument(
        "source",
        type=Path,
        help="the checkpoint: .safetensors, or PyTorch's .pth/.pt/.bin (read without torch)",
    )
    importer.add_argument("--network", required=True, help="GluonCV's name, e.g. resnet50_v1s, vgg16_atrous")
    for p in (lister, importer):
        p.add_argument("--models-dir", type=Path, help="default: $MXNET_HOME/models (~/.mxnet/models)")


def run(args: argparse.Namespace) -> int:
    directory = args.models_dir or models_dir()
    try:
        if args.action == "list":
            sys.stdout.write(format_rows(directory, rows(directory)))
        else:
            print(f"wrote {import_checkpoint(args.source, args.network, directory)}")
        return 0
    except ClientError as exc:
        print(f"sagemaker-cv weights: {exc}", file=sys.stderr)
        return exc.exit_code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sagemaker_cv.tools.weights")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("fetch", help="download the sources from the Hugging Face hub and import them")
    p.add_argument("networks", nargs="*", help=f"default: all of {', '.join(SOURCES)}")
    p.add_argument("--models-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        fetch(args.networks, args.models_dir)
        return 0
    except ClientError as exc:
        print(f"weights fetch: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
