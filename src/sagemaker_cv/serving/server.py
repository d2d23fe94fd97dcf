"""`sagemaker-cv serve`: gunicorn, run in this process (one process tree: the master and its
workers), gthread workers, the model loaded in each worker after the fork.

The master reads the model directory without MXNet (which files, which algorithm) and never imports
MXNet: a native runtime's threads do not survive a fork, and a worker forked from a master that had
loaded one can hang (gunicorn issues #1891, #2478). Each worker then loads the model itself, on its
share of the cores (or on its own GPU), and answers /ping from its first moment.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from sagemaker_cv.contract import logs
from sagemaker_cv.contract.errors import ClientError
from sagemaker_cv.contract.paths import DEFAULT_ROOT, MLPaths
from sagemaker_cv.serving.settings import (
    ServerSettings,
    available_cores,
    gpu_for_worker,
    pinned_environment,
    thread_environment,
    visible_gpus,
)

log = logs.get("serving")
#: gunicorn's exit code for a worker that failed to boot: the master then stops the server
WORKER_BOOT_ERROR = 3


def add_arguments(sub) -> None:
    p = sub.add_parser(
        "serve", help="serve the trained model over HTTP (SageMaker hosting and batch transform)"
    )
    p.add_argument(
        "--ml-root",
        type=Path,
        default=Path(os.environ.get("SAGEMAKER_CV_ML_ROOT", str(DEFAULT_ROOT))),
        help="serve ML_ROOT/model (default: $SAGEMAKER_CV_ML_ROOT or /opt/ml)",
    )
    p.add_argument(
        "--algorithm",
        default=os.environ.get("SAGEMAKER_CV_ALGORITHM"),
        help="confirm the algorithm (default: read from the model's files; $SAGEMAKER_CV_ALGORITHM)",
    )
    p.add_argument("--port", type=int, help="the port (default: $SAGEMAKER_BIND_TO_PORT or 8080)")
    p.add_argument("--host", default="0.0.0.0", help="the address to listen on (default: 0.0.0.0)")


def run(args: argparse.Namespace) -> int:
    logs.setup()
    try:
        from sagemaker_cv.algorithms.trained import open_model

        paths = MLPaths(args.ml_root)
        model = open_model(
            model_source(paths.model_dir), Path(tempfile.mkdtemp(prefix="model-")), args.algorithm
        )
        settings = ServerSettings.from_env(
            os.environ, cores=available_cores(), gpus=visible_gpus(os.environ), port=args.port
        )
    except ClientError as exc:
        log.error("Customer Error: %s", "; ".join(exc.problems))
        return 2
    if model.algorithm.predictor is None:
        log.error("Customer Error: algorithm %s cannot serve in this version", model.algorithm.name)
        return 2
    # Inherited by every worker, read by MXNet and OpenMP when a worker imports them.
    os.environ.update(thread_environment(settings))
    log.info(
        "Serving %s from %s on %s:%d: %d worker(s) x %d threads, %s, timeout %d s",
        model.algorithm.name,
        model.directory,
        args.host,
        settings.port,
        settings.workers,
        settings.threads,
        f"one GPU each of {settings.gpus}"
        if settings.gpus
        else f"{os.environ['OMP_NUM_THREADS']} core(s) each",
        settings.timeout,
    )
    return serve(model, settings, args.host)


def model_source(model_dir: Path) -> Path:
    """The model directory, or the model.tar.gz in it when that is all it holds (a local tree);
    SageMaker unpacks the archive before the server starts."""
    from sagemaker_cv.algorithms.trained import recognise

    archive = model_dir / "model.tar.gz"
    if model_dir.is_dir() and not recognise(model_dir) and archive.is_file():
        return archive
    return model_dir


def serve(model, settings: ServerSettings, host: str) -> int:
    from gunicorn.app.base import BaseApplication

    class Server(BaseApplication):
        def load_config(self):
            for key, value in gunicorn_config(settings, host).items():
                if key in self.cfg.settings:  # settings newer than the installed gunicorn are left out
                    self.cfg.set(key, value)

        def load(self):
            return worker_app(model, settings)

    try:
        Server().run()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    return 0


def gunicorn_config(settings: ServerSettings, host: str) -> dict:
    """gunicorn's settings for these ServerSettings (pure)."""
    return {
        "bind": [f"{host}:{settings.port}"],
        "workers": settings.workers,
        "worker_class": "gthread",
        "threads": settings.threads,
        "timeout": settings.timeout,
        "graceful_timeout": settings.graceful_timeout,
        "keepalive": 5,
        "preload_app": False,
        "pre_fork": _pre_fork,
        "post_worker_init": _post_worker_init,
        "worker_exit": _worker_exit,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "info",
        "proc_name": "sagemaker-cv-serve",
        # the application decides request sizes (413); gunicorn's own limits stay on headers
        "limit_request_line": 8190,
        # gunicorn >= 25.1 opens a control socket in $HOME; nothing here uses it
        "control_socket_disable": True,
    }


def worker_app(model, settings: ServerSettings):
    """The WSGI application of one worker (called after the fork); loading starts in post_worker_init."""
    from sagemaker_cv.serving.app import Application, ModelSlot

    def load():
        import time

        started = time.perf_counter()
        import mxnet as mx

        ctx = worker_context(mx)
        predictor = model.algorithm.load_predictor(model, ctx)
        log.info(
            "Worker %d loaded %s on %s in %.1f s",
            os.getpid(),
            predictor.description,
            f"{ctx} (CUDA device {_WORKER_GPU['device']})" if _WORKER_GPU else ctx,
            time.perf_counter() - started,
        )
        return predictor

    def failed(exc: BaseException) -> None:
        if isinstance(exc, ClientError):
            log.error("Customer Error: %s", "; ".join(exc.problems))
        else:
            log.exception("Algorithm Error: the model could not be loaded", exc_info=exc)
        sys.stdout.flush()
        sys.stderr.flush()
        # Every worker would fail alike: exit as a worker that failed to boot, which stops the server.
        os._exit(WORKER_BOOT_ERROR)

    return Application(ModelSlot(load, failed), settings)


#: the GPU this worker process took: {"device": its CUDA_VISIBLE_DEVICES name}; empty on CPUs
#: (set in the worker right after the fork, before MXNet is imported)
_WORKER_GPU: dict = {}


def worker_context(mx):
    """This worker's MXNet context: its own GPU, which it alone sees as gpu(0), or the CPU."""
    return mx.gpu(0) if _WORKER_GPU else mx.cpu()


def _pre_fork(server, worker) -> None:
    # In the master: which visible device the new worker takes (a replaced worker, its
    # predecessor's). The master has no CUDA: it only counts.
    gpus = visible_gpus(os.environ)
    taken = {w.gpu for w in server.WORKERS.values() if getattr(w, "gpu", None) is not None}
    worker.gpu = gpu_for_worker(taken, gpus)


def _post_worker_init(worker) -> None:
    gpu = getattr(worker, "gpu", None)
    if gpu is not None:
        # Before the loading thread imports MXNet: CUDA reads the variable once, when it starts.
        os.environ.update(pinned_environment(gpu, os.environ))
        _WORKER_GPU["device"] = os.environ["CUDA_VISIBLE_DEVICES"]
    logs.setup()
    worker.wsgi.slot.start()


def _worker_exit(server, worker) -> None:
    log.info("Worker %d stopped", worker.pid)
