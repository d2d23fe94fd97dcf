"""Helpers for tests that run the real command line on generated /opt/ml trees."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path


class Run:
    def __init__(self, root: Path, proc: subprocess.CompletedProcess):
        self.root, self.code, self.out = root, proc.returncode, proc.stdout + proc.stderr

    @property
    def failure(self) -> str | None:
        path = self.root / "output" / "failure"
        return path.read_text() if path.exists() else None

    @property
    def model_files(self) -> list[str]:
        return sorted(p.name for p in (self.root / "model").iterdir())

    def values(self, prefix: str) -> list[float]:
        """Numbers logged as `<prefix>=<value>`, in order."""
        return [
            float(line.split(prefix + "=")[1].split()[0])
            for line in self.out.splitlines()
            if prefix + "=" in line
        ]


def cli_env(**extra) -> dict:
    env = dict(os.environ)
    env.setdefault("SAGEMAKER_CV_LOG_INTERVAL", "2")
    # Every job a test runs has a fixed seed, so a learning threshold passes or fails the same way
    # on every run on a machine: with a drawn seed the im2rec toy job's best accuracy ranged from
    # 0.58 (a CI failure) to 0.98. A test about the drawn seed passes SAGEMAKER_CV_SEED="".
    env.setdefault("SAGEMAKER_CV_SEED", "1")
    env.update({k: str(v) for k, v in extra.items()})
    return env


def train(root: Path, *args: str, command: str = "train", timeout: int = 600, **env) -> Run:
    proc = subprocess.run(
        [sys.executable, "-m", "sagemaker_cv", command, "--ml-root", str(root), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=cli_env(**env),
    )
    return Run(root, proc)


def in_process(root: Path, *args: str, command: str = "validate", **env) -> Run:
    """The command line run in this process: for jobs that end before training (`validate`, or
    `train` on input it refuses), without a new interpreter and MXNet import per case (~3 s)."""
    from sagemaker_cv import cli

    saved, saved_tempdir = dict(os.environ), tempfile.tempdir
    out = io.StringIO()
    os.environ.update(cli_env(**env))
    tempfile.tempdir = None  # Python keeps the first TMPDIR it read: the run reads its own, as a new process
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            code = cli.main([command, "--ml-root", str(root), *args])
    finally:
        os.environ.clear()
        os.environ.update(saved)
        tempfile.tempdir = saved_tempdir
    return Run(root, subprocess.CompletedProcess([command], code, out.getvalue(), ""))


def set_hyperparameters(root: Path, **changes) -> dict:
    path = root / "input" / "config" / "hyperparameters.json"
    hp = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            hp.pop(key, None)
        else:
            hp[key] = str(value)
    path.write_text(json.dumps(hp))
    return hp


def split_rec(rec: Path, names: list[str]) -> list[Path]:
    """Split a .rec into consecutive parts named `names` (relative to its directory), as a
    large dataset or a ShardedByS3Key channel arrives; the original is removed."""
    import mxnet as mx

    reader = mx.recordio.MXRecordIO(str(rec), "r")
    records = []
    while (item := reader.read()) is not None:
        records.append(item)
    reader.close()
    rec.unlink()
    per_part = -(-len(records) // len(names))
    parts = []
    for i, name in enumerate(names):
        path = rec.parent / name
        path.parent.mkdir(parents=True, exist_ok=True)
        writer = mx.recordio.MXRecordIO(str(path), "w")
        for item in records[i * per_part : (i + 1) * per_part]:
            writer.write(item)
        writer.close()
        parts.append(path)
    return parts


def model_file_bytes(directory: Path) -> dict[str, bytes]:
    """The model files' bytes, to compare two runs; the symbol's without the `__init__` attributes
    of Gluon constants (e.g. the normalisation's mean and std), which carry a Python object id and
    so differ between any two processes."""
    out = {}
    for p in sorted(directory.iterdir()):
        data = p.read_bytes()
        if p.name.endswith("-symbol.json"):
            graph = json.loads(data)
            for node in graph["nodes"]:
                node.get("attrs", {}).pop("__init__", None)
            data = json.dumps(graph).encode()
        out[p.name] = data
    return out


def killed_and_restarted(
    base: Path, algorithm: str, kill_at: str, checkpoints: tuple[str, ...] = ("checkpoint-0001",)
) -> tuple[Run, Run]:
    """A spot job's life on copies of the /opt/ml tree `base` (with checkpoints on): an
    uninterrupted run with seed 5; a run SIGKILLed at its first output line containing `kill_at`,
    when exactly `checkpoints` exist; that run restarted on the same directories with another seed
    (the checkpoint's must win). Returns (uninterrupted, restarted); `.root` is each one's tree."""
    whole = shutil.copytree(base, base.parent / "whole")
    run = train(whole, "--algorithm", algorithm, SAGEMAKER_CV_SEED=5)
    assert run.code == 0, run.out[-3000:]

    killed = shutil.copytree(base, base.parent / "killed")
    proc = subprocess.Popen(
        [sys.executable, "-m", "sagemaker_cv", "train", "--algorithm", algorithm, "--ml-root", str(killed)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=cli_env(SAGEMAKER_CV_SEED=5, SAGEMAKER_CV_LOG_INTERVAL=1),
    )
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if kill_at in line:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "".join(lines)[-3000:]
    assert sorted(p.name for p in (killed / "checkpoints").iterdir()) == list(checkpoints)

    again = train(killed, "--algorithm", algorithm, SAGEMAKER_CV_SEED=99)
    assert again.code == 0, again.out[-3000:]
    assert "Random seed: 5 (the checkpoint's)" in again.out
    assert not any(Path(killed / "model").glob(".*"))  # no temporary file left behind
    return run, again
