"""The WSGI application one worker runs: /ping, /invocations, /execution-parameters.

The model is loaded in the worker, after the fork, in a thread of its own: /ping answers at once
from the first moment (503 while loading, 200 with an empty body once loaded), and never waits
for an inference, which runs in another of the worker's request threads. A request body larger
than the payload limit is refused from its Content-Length, before a byte of it is read.

gunicorn's gthread worker hands every request, /ping too, to one pool of request threads, in the
order they came. Were every thread to hold an invocation (they queue for the network one at a
time), a ping would wait for inferences to finish; so a worker holds at most threads - 1
invocations, and answers one more at once with 503 (retry), keeping a thread for /ping.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

from sagemaker_cv.contract import logs
from sagemaker_cv.contract.errors import ClientError, plain
from sagemaker_cv.serving.handler import Handler, Response, error
from sagemaker_cv.serving.settings import MiB, ServerSettings

log = logs.get("serving")
REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    411: "Length Required",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class ModelSlot:
    """The worker's predictor: loaded once by `start` in a background thread. A model that cannot
    load ends the worker through `on_failure` (the server then stops: every worker would fail)."""

    def __init__(self, load: Callable[[], object], on_failure: Callable[[BaseException], None]):
        self._load, self._on_failure = load, on_failure
        self._ready = threading.Event()
        self.predictor = None
        self.failure: str | None = None

    def start(self) -> None:
        threading.Thread(target=self._run, name="load-model", daemon=True).start()

    def _run(self) -> None:
        try:
            self.predictor = self._load()
        except BaseException as exc:  # noqa: BLE001 - told to the log and to the server
            self.failure = plain("; ".join(exc.problems)) if isinstance(exc, ClientError) else repr(exc)
            self._ready.set()
            self._on_failure(exc)
            return
        self._ready.set()

    @property
    def ready(self) -> bool:
        return self._ready.is_set() and self.predictor is not None

    def wait(self, timeout: float) -> object | None:
        self._ready.wait(timeout)
        return self.predictor


class Application:
    """A WSGI callable (PEP 3333) around one ModelSlot."""

    def __init__(self, slot: ModelSlot, settings: ServerSettings):
        self.slot, self.settings = slot, settings
        self._handler: Handler | None = None
        self.max_invocations = max(1, settings.threads - 1)
        self._invocations = threading.BoundedSemaphore(self.max_invocations)

    def __call__(self, environ, start_response):
        response, extra = self.route(environ)
        headers = [("Content-Type", response.content_type), ("Content-Length", str(len(response.body)))]
        start_response(f"{response.status} {REASONS.get(response.status, '')}".rstrip(), headers + extra)
        return [response.body]

    def route(self, environ) -> tuple[Response, list[tuple[str, str]]]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "")
        allowed = {"/ping": ("GET", "HEAD"), "/invocations": ("POST",), "/execution-parameters": ("GET",)}
        if path not in allowed:
            return error(404, f"no such path {path[:100]!r}: this server answers {', '.join(allowed)}"), []
        if method not in allowed[path]:
            verbs = ", ".join(allowed[path])
            return error(405, f"{method} {path}: expected {verbs}"), [("Allow", verbs)]
        if path == "/ping":
            return self.ping(), []
        if path == "/execution-parameters":
            body = json.dumps(self.settings.execution_parameters()).encode()
            return Response(200, body, "application/json"), []
        return self.invoke(environ), []

    def ping(self) -> Response:
        if self.slot.ready:
            return Response(200, b"", "text/plain")
        if self.slot.failure:
            return error(500, f"the model could not be loaded: {self.slot.failure}")
        return error(503, "loading the model")

    def invoke(self, environ) -> Response:
        if not self._invocations.acquire(blocking=False):
            busy = (
                f"busy: this worker holds {self.max_invocations} invocations already (the most it takes, "
                "keeping a thread for /ping); retry, or serve with more workers or instances"
            )
            log.warning("invocation answered 503: %s", busy)
            return error(503, busy)
        try:
            return self._invoke(environ)
        finally:
            self._invocations.release()

    def _invoke(self, environ) -> Response:
        body = read_body(environ, self.settings.max_request_bytes)
        if isinstance(body, Response):
            return body
        predictor = self.slot.wait(self.settings.timeout)
        if predictor is None:
            reason = self.slot.failure or f"still loading after {self.settings.timeout} s"
            return error(503, f"the model is not loaded: {reason}")
        if self._handler is None:
            settings = self.settings
            self._handler = Handler(
                predictor, settings.max_response_bytes, settings.default_accept, settings.batch
            )
        started = time.perf_counter()
        response = self._handler(body, environ.get("CONTENT_TYPE"), environ.get("HTTP_ACCEPT"))
        if response.status != 200:
            log.info(
                "invocation answered %d in %.0f ms: %s",
                response.status,
                (time.perf_counter() - started) * 1e3,
                response.body.decode()[:300].strip(),
            )
        return response


def read_body(environ, limit: int) -> bytes | Response:
    """The request body, or 413 decided from Content-Length before reading (a chunked body is read
    up to the limit and no further)."""
    too_large = (
        f"the request body is larger than {limit // MiB} MiB (SAGEMAKER_MAX_PAYLOAD_IN_MB); send a "
        "smaller image (a JPEG of the same picture is usually several times smaller than a PNG)"
    )
    stream = environ["wsgi.input"]
    length_text = environ.get("CONTENT_LENGTH") or ""
    if length_text.strip():
        try:
            length = int(length_text)
        except ValueError:
            return error(400, f"Content-Length {length_text[:40]!r} is not a number")
        if length > limit:
            return error(413, too_large.replace("larger than", f"{length:,} bytes, more than"))
        return stream.read(length) if length > 0 else b""
    if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
        body = stream.read(limit + 1)
        return error(413, too_large) if len(body) > limit else body
    return b""
