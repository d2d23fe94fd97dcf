"""The server's settings, read from the environment at the edge by one pure parser.

| variable | default | meaning |
| --- | --- | --- |
| SAGEMAKER_BIND_TO_PORT | 8080 | the port (inference pipelines set it); `--port` overrides |
| SAGEMAKER_MODEL_SERVER_WORKERS | one per GPU; on CPUs one per core | worker processes |
| SAGEMAKER_MODEL_SERVER_TIMEOUT | 60; 600 in batch | seconds a worker may stay silent before it is replaced |
| SAGEMAKER_MAX_PAYLOAD_IN_MB | 6 | request bodies above this many MiB get 413 |
| SAGEMAKER_BATCH | false | true in batch transform: responses are not capped at 6 MiB, JSON Lines by default |
| SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT | the algorithm's | the response type when a request names none |
| SAGEMAKER_MAX_CONCURRENT_TRANSFORMS, SAGEMAKER_BATCH_STRATEGY | unset | what /execution-parameters answers |

Workers share the cores: each runs its operators on MXNet's default thread count divided by the
workers, so that busy workers never ask for more threads than there are cores (`thread_environment`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sagemaker_cv.contract.errors import ClientError

MiB = 1 << 20
#: SageMaker's cap on a real-time endpoint's request and response bodies
REAL_TIME_LIMIT = 6 * MiB
#: batch transform's largest MaxPayloadInMB
BATCH_LIMIT_MB = 100
#: batch transform's invocation timeout (ModelClientConfig.InvocationsTimeoutInSeconds' default)
BATCH_TIMEOUT = 600
#: SageMaker sends SIGKILL 30 s after SIGTERM; in-flight requests get this long to finish
DRAIN_SECONDS = 20
#: request threads per worker: one runs the network, the others read, decode and encode the
#: requests queued behind it, and answer /ping meanwhile (invocations take at most all but one:
#: app.Application)
THREADS = 16


def cpu_workers(cores: int) -> int:
    """Workers on a CPU host: one per core, each with one OpenMP thread. Measured on 2 cores
    (bench/bench_serve.py, docs/serving.md): two workers served as many images/s as one at
    concurrency 1 and twice as many at concurrency 4, where one worker's queue slowed it."""
    return max(1, cores)


@dataclass(frozen=True)
class ServerSettings:
    port: int = 8080
    workers: int = 1
    threads: int = THREADS
    timeout: int = 60
    #: batch transform (SAGEMAKER_BATCH=true)
    batch: bool = False
    max_request_bytes: int = REAL_TIME_LIMIT
    #: None: no cap (batch transform); else responses above it are refused
    max_response_bytes: int | None = REAL_TIME_LIMIT
    default_accept: str | None = None
    gpus: int = 0
    cores: int = 1
    batch_strategy: str | None = None
    max_concurrent_transforms: int | None = None

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str], *, cores: int, gpus: int, port: int | None = None
    ) -> ServerSettings:
        """Every problem with the variables in one ClientError."""
        problems: list[str] = []

        def integer(name: str, default: int | None, low: int, high: int) -> int | None:
            value = environ.get(name)
            if value is None or value.strip() == "":
                return default
            try:
                number = int(value.strip())
            except ValueError:
                number = None
            if number is None or not low <= number <= high:
                problems.append(f"{name}={value!r}: expected an integer in [{low}, {high}]")
                return default
            return number

        if port is None:
            port = integer("SAGEMAKER_BIND_TO_PORT", 8080, 1, 65535)
        workers = integer("SAGEMAKER_MODEL_SERVER_WORKERS", None, 1, 256)
        if workers is None:
            workers = gpus if gpus else cpu_workers(cores)
        # SDK v2's local mode writes "True"; SageMaker itself "true".
        batch_text = environ.get("SAGEMAKER_BATCH", "false").strip().lower()
        if batch_text not in ("true", "false", ""):
            problems.append(f"SAGEMAKER_BATCH={environ['SAGEMAKER_BATCH']!r}: expected true or false")
        batch = batch_text == "true"
        # A transform job waits 600 s for an invocation; a worker must not be replaced sooner.
        timeout = integer("SAGEMAKER_MODEL_SERVER_TIMEOUT", BATCH_TIMEOUT if batch else 60, 1, 3600)
        payload_mb = integer("SAGEMAKER_MAX_PAYLOAD_IN_MB", 6, 1, BATCH_LIMIT_MB)
        concurrent = integer("SAGEMAKER_MAX_CONCURRENT_TRANSFORMS", None, 1, 1000)
        strategy = environ.get("SAGEMAKER_BATCH_STRATEGY") or None
        if strategy is not None and strategy not in ("SINGLE_RECORD", "MULTI_RECORD"):
            problems.append(f"SAGEMAKER_BATCH_STRATEGY={strategy!r}: expected SINGLE_RECORD or MULTI_RECORD")
            strategy = None
        if problems:
            raise ClientError(problems)
        return cls(
            port=port,
            workers=workers,
            timeout=timeout,
            batch=batch,
            max_request_bytes=payload_mb * MiB,
            max_response_bytes=None if batch else REAL_TIME_LIMIT,
            default_accept=(environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT") or "").strip() or None,
            gpus=gpus,
            cores=cores,
            batch_strategy=strategy,
            max_concurrent_transforms=concurrent,
        )

    @property
    def graceful_timeout(self) -> int:
        return min(DRAIN_SECONDS, self.timeout)

    def execution_parameters(self) -> dict:
        """What /execution-parameters answers: the job's own values where SageMaker set them."""
        return {
            "MaxConcurrentTransforms": self.max_concurrent_transforms or self.workers,
            "BatchStrategy": self.batch_strategy or "SINGLE_RECORD",
            "MaxPayloadInMB": self.max_request_bytes // MiB,
        }


def thread_environment(settings: ServerSettings, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The thread counts each worker's MXNet uses, set before a worker imports it: MXNet's own
    default (OpenMP threads = half the cores on x86, one per physical core with hyper-threading),
    split between the workers, so that busy workers never ask for more threads than that. Two
    OpenMP threads for one worker on 2 shared cores served 0.1x the images/s of MXNet's default
    (bench/bench_serve.py, docs/serving.md): OpenMP's barriers stall whenever a core is taken.
    Counts the user set (OMP_NUM_THREADS, ...) are kept."""
    per_worker = str(max(1, settings.cores // 2 // settings.workers))
    wanted = {
        "OMP_NUM_THREADS": per_worker,
        "MKL_NUM_THREADS": per_worker,
        # OpenCV's own pool (decoding, resizing) would add a thread per core in every worker.
        "OPENCV_FOR_THREADS_NUM": per_worker,
    }
    environ = os.environ if environ is None else environ
    return {k: v for k, v in wanted.items() if k not in environ}


def _named_devices(visible: str) -> list[str]:
    """The devices a CUDA_VISIBLE_DEVICES value names (indices or GPU-... UUIDs), in its order."""
    return [v.strip() for v in visible.split(",") if v.strip() and v.strip() not in ("-1", "NoDevFiles")]


def visible_gpus(environ: Mapping[str, str], driver: Path = Path("/proc/driver/nvidia/gpus")) -> int:
    """GPUs on this host without importing MXNet (the server's master must not load it): those
    CUDA_VISIBLE_DEVICES names, else the devices the NVIDIA driver lists."""
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len(_named_devices(visible))
    try:
        return sum(1 for _ in driver.iterdir())
    except OSError:
        return 0


def pinned_environment(gpu: int, environ: Mapping[str, str]) -> dict[str, str]:
    """What the worker that took visible device `gpu` sets before it loads CUDA: a
    CUDA_VISIBLE_DEVICES that names that device alone (the host's own name for it: with "2,3", the
    second worker gets "3"). Its CUDA runtime then sees one device, as `gpu(0)`, and can create no
    context, cuDNN handle or memory pool on another worker's device."""
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    names = _named_devices(visible) if visible is not None else []
    return {"CUDA_VISIBLE_DEVICES": names[gpu] if gpu < len(names) else str(gpu)}


def available_cores() -> int:
    """Cores this process may run on (a container's CPU set, not the host's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def gpu_for_worker(taken: set[int], gpus: int) -> int | None:
    """The device a new worker takes: the first no live worker holds (a replaced worker takes its
    predecessor's), round robin when there are more workers than devices; None on a CPU host."""
    if not gpus:
        return None
    return next((i for i in range(gpus) if i not in taken), len(taken) % gpus)
