"""One invocation, without a server: (body, Content-Type, Accept) -> (status, body, Content-Type).

The HTTP server calls it for /invocations, and `sagemaker-cv predict` can call it on a file, so the
two cannot answer differently. Every answer but 200 is one line of JSON, `{"error": "..."}`, that
says what was wrong and what would be valid; a traceback only ever reaches the log.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sagemaker_cv.contract import logs
from sagemaker_cv.contract.content_types import OCTET_STREAM
from sagemaker_cv.contract.errors import ClientError, NotAnImage, plain
from sagemaker_cv.serving.negotiation import batch_default, choose, media_type

JSON_TYPE = "application/json"
log = logs.get("serving")


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str


def error(status: int, message: str) -> Response:
    return Response(status, (json.dumps({"error": message}) + "\n").encode(), JSON_TYPE)


@dataclass
class Handler:
    """Answers invocations with `predictor` (an `inference.ImagePredictor`)."""

    predictor: object
    max_response_bytes: int | None = None  # None: no cap (batch transform)
    #: the response type of a request without a preference (SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT)
    default_accept: str | None = None
    #: batch transform: without default_accept, JSON answers default to JSON Lines
    batch: bool = False

    def __call__(self, body: bytes, content_type: str | None, accept: str | None) -> Response:
        predictor = self.predictor
        kind = media_type(content_type)
        accepted = ", ".join(predictor.content_types)
        if kind not in predictor.content_types:
            given = f"Content-Type {content_type!r}" if content_type else "no Content-Type"
            return error(415, f"{given}: expected one of {accepted}")
        chosen = self.chosen(accept)
        if chosen is None:
            return error(406, f"Accept {accept!r}: this model answers {', '.join(predictor.accepts)}")
        try:
            out = predictor(body, chosen)
        except NotAnImage as exc:
            # Bytes of unnamed type are images only if their bytes say so: a type nobody named is
            # unsupported (415); an image type that is not true of the bytes is a bad image (400).
            if kind == OCTET_STREAM:
                return error(
                    415,
                    f"Content-Type {content_type!r}: {plain('; '.join(exc.problems))}; "
                    f"send the bytes of one image, as one of {accepted}",
                )
            return error(400, plain("; ".join(exc.problems)))
        except ClientError as exc:
            return error(400, plain("; ".join(exc.problems)))
        except MemoryError:
            return error(500, "out of memory while predicting: send a smaller image or use a larger instance")
        except Exception as exc:  # noqa: BLE001 - a fault of ours: logged whole, answered in one line
            log.exception("invocation failed")
            return error(500, f"internal error while predicting ({type(exc).__name__}); see the server log")
        if self.max_response_bytes is not None and len(out) > self.max_response_bytes:
            others = [a for a in predictor.accepts if a != chosen]
            return error(
                413,
                f"the response would be {len(out):,} bytes ({chosen}), more than the "
                f"{self.max_response_bytes:,} a real-time endpoint returns; send a smaller image"
                + (f" or ask for {' or '.join(others)} (Accept)" if others else "")
                + ", or use batch transform",
            )
        return Response(200, out, chosen)

    def chosen(self, accept: str | None) -> str | None:
        """The response type this handler answers a request with `accept` in; None: 406."""
        default = self.default_accept
        if not default and self.batch:
            default = batch_default(self.predictor.accepts)
        return choose(accept, self.predictor.accepts, default)
