"""Every environment variable the image reads, in one table: who sets it, its default and what it
means (docs/usage.md's table is generated from it, and a test checks that the code reads no
variable the table lacks), and the typed settings of a job, parsed from the environment at
once with every bad value named in one ClientError (`JobSettings.from_env`).

The serving and distributed settings are parsed at their own edges (serving.settings,
distributed.plan) from the names declared here.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass

from sagemaker_cv.contract import numbers
from sagemaker_cv.contract.errors import ClientError

YOU, SAGEMAKER, LAUNCHER, TESTS = "you", "SageMaker", "the launcher", "tests only"


@dataclass(frozen=True)
class Variable:
    name: str
    set_by: str  # YOU, SAGEMAKER, LAUNCHER (between the processes of a host) or TESTS
    default: str  # as a person reads it
    meaning: str


VARIABLES = (
    Variable("SAGEMAKER_CV_ALGORITHM", YOU, "image-classification (each image sets its own)", "the algorithm when `--algorithm` is not given"),
    Variable("SAGEMAKER_CV_ML_ROOT", YOU, "/opt/ml", "replaces `/opt/ml` (`--ml-root`)"),
    Variable("SAGEMAKER_CV_SEED", YOU, "drawn at random and logged", "the job's random seed, an integer in [0, 2147483647]; a job resumed from a checkpoint keeps the checkpoint's"),
    Variable("SAGEMAKER_CV_CPU_DEVICES", YOU, "1", "on a machine without GPUs, train on this many CPU contexts (exercises the multi-device path; segmentation refuses syncbn=True on more than one)"),
    Variable("SAGEMAKER_CV_LOG_INTERVAL", YOU, "20", "batches between two `Epoch[N] Batch [M]` lines, as the built-in's"),
    Variable("SAGEMAKER_CV_PIPE_TIMEOUT", YOU, "900", "Pipe mode: seconds to wait for a FIFO to appear, for its writer and for data mid-stream"),
    Variable("SAGEMAKER_CV_TENSORBOARD_DIR", YOU, "/opt/ml/output/tensorboard", "where the TensorBoard event files go (the TensorBoardOutputConfig LocalPath)"),
    Variable("SAGEMAKER_CV_EXPORT_ONNX", YOU, "0", "1: the job also writes `model.onnx` into the model directory"),
    Variable("MXNET_HOME", YOU, "~/.mxnet (/opt/mxnet in the image)", "pretrained weights are read from `$MXNET_HOME/models`"),
    Variable("SAGEMAKER_CV_PS_PORT", YOU, "8000", "several hosts: the parameter server's port"),
    Variable("SAGEMAKER_CV_CONTROL_PORT", YOU, "the PS port + 1", "several hosts: the launchers' control port"),
    Variable("SAGEMAKER_CV_HOST_RESOLVE_TIMEOUT", YOU, "900", "several hosts: seconds to wait for the other hosts' names to resolve"),
    Variable("SAGEMAKER_CV_RENDEZVOUS_TIMEOUT", YOU, "900", "several hosts: seconds to wait for every host to join"),
    Variable("SAGEMAKER_CV_PEER_TIMEOUT", YOU, "30", "several hosts: seconds without a heartbeat before a host is given up"),
    Variable("SAGEMAKER_CV_STALL_TIMEOUT", YOU, "1800", "several hosts: seconds without progress on any worker before the job fails"),
    Variable("SAGEMAKER_CV_STOP_GRACE", YOU, "90", "several hosts: seconds a stopped job has to save its model before the roles are killed"),
    Variable("SAGEMAKER_CV_HOST_MAP", YOU, "none", "several hosts: `algo-1=10.0.0.1,...` instead of DNS (tests on loopback)"),
    Variable("SAGEMAKER_BIND_TO_PORT", SAGEMAKER, "8080", "serving: the port to listen on (inference pipelines)"),
    Variable("SAGEMAKER_MODEL_SERVER_WORKERS", SAGEMAKER, "one per GPU, else one per core", "serving: worker processes"),
    Variable("SAGEMAKER_MODEL_SERVER_TIMEOUT", SAGEMAKER, "60 (600 in batch transform)", "serving: seconds an invocation may take"),
    Variable("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", SAGEMAKER, "each algorithm's", "serving: the answer's type when a request has no Accept"),
    Variable("SAGEMAKER_BATCH", SAGEMAKER, "false", "true in a batch transform job"),
    Variable("SAGEMAKER_MAX_PAYLOAD_IN_MB", SAGEMAKER, "6", "serving: the largest request body"),
    Variable("SAGEMAKER_BATCH_STRATEGY", SAGEMAKER, "SINGLE_RECORD", "batch transform: how records are grouped"),
    Variable("SAGEMAKER_MAX_CONCURRENT_TRANSFORMS", SAGEMAKER, "the worker count", "batch transform: requests in flight"),
    Variable("SAGEMAKER_CV_LAUNCHER_PID", LAUNCHER, "", "several hosts: a role process dies with its launcher"),
    Variable("SAGEMAKER_CV_REPORT_FD", LAUNCHER, "", "several hosts: the pipe on which the worker reports"),
    Variable("SAGEMAKER_CV_DECISION_FD", LAUNCHER, "", "several hosts: the pipe on which the worker hears the primary's decisions"),
    Variable("SAGEMAKER_CV_TEST_EXIT_AT_STEP", TESTS, "", "fault injection: the worker exits after this step (distributed.faults)"),
    Variable("SAGEMAKER_CV_TEST_EXIT_WHEN_TRAINED", TESTS, "", "fault injection: the worker exits as soon as training ends (distributed.faults)"),
    Variable("SAGEMAKER_CV_DUMP_PARAMS", TESTS, "", "the worker writes its parameters here at the end (distributed.faults)"),
)  # fmt: skip
NAMES = frozenset(v.name for v in VARIABLES)


def markdown_table() -> str:
    lines = ["| Variable | Set by | Default | Meaning |", "| --- | --- | --- | --- |"]
    lines += [f"| `{v.name}` | {v.set_by} | {v.default or '-'} | {v.meaning} |" for v in VARIABLES]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class JobSettings:
    """The variables a training job reads, typed. Read at the edge (`runner.load`, so `validate`
    and `train` refuse a bad value alike and before any work) and wherever a part needs one."""

    seed: int | None = None  # None: draw one
    cpu_devices: int = 1
    log_interval: int = 20
    pipe_timeout: float = 900.0
    tensorboard_dir: str | None = None  # None: the default LocalPath
    export_onnx: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> JobSettings:
        environ = os.environ if environ is None else environ
        problems: list[str] = []

        def read(name: str, parse, default, blank_is_unset: bool = False):
            value = environ.get(name)
            if value is None or (blank_is_unset and value.strip() == ""):
                return default
            parsed, expected = parse(value.strip())
            if parsed is None:
                problems.append(f"{name}={value!r}: expected {expected}")
                return default
            return parsed

        settings = cls(
            seed=read("SAGEMAKER_CV_SEED", _seed, None, blank_is_unset=True),
            cpu_devices=read("SAGEMAKER_CV_CPU_DEVICES", _count(1024, "CPU contexts"), 1),
            log_interval=read("SAGEMAKER_CV_LOG_INTERVAL", _count(None, "batches between two log lines"), 20),
            pipe_timeout=read("SAGEMAKER_CV_PIPE_TIMEOUT", _seconds, 900.0),
            tensorboard_dir=read("SAGEMAKER_CV_TENSORBOARD_DIR", _directory, None),
            export_onnx=read("SAGEMAKER_CV_EXPORT_ONNX", _switch, False, blank_is_unset=True),
        )
        if problems:
            raise ClientError(problems)
        return settings


# Each parser returns (value, None) or (None, what was expected).


def _integer(text: str) -> int | None:
    return int(text) if numbers.is_integer(text) and "." not in text else None


def _seed(text: str):
    value = _integer(text)
    return (
        (value, None) if value is not None and 0 <= value < 2**31 else (None, "an integer in [0, 2147483647]")
    )


def _count(most: int | None, what: str):
    def parse(text: str):
        value = _integer(text)
        if value is None or value < 1 or (most is not None and value > most):
            limit = f" up to {most}" if most else ""
            return None, f"a positive integer{limit} ({what})"
        return value, None

    return parse


def _seconds(text: str):
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    return (value, None) if value > 0 and math.isfinite(value) else (None, "a positive number of seconds")


def _directory(text: str):
    if not text or not os.path.isabs(text) or "\x00" in text:
        return None, "an absolute directory path (the TensorBoardOutputConfig LocalPath)"
    return text, None


def _switch(text: str):
    value = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}.get(text.lower())
    return (value, None) if value is not None else (None, "1 (on) or 0 (off)")
