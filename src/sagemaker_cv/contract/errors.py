"""User errors (ClientError) kept apart from our own faults (AlgorithmError).

SageMaker shows the first 1024 characters of /opt/ml/output/failure as FailureReason, so a
ClientError's text puts every problem first, one per line, shortest and most actionable first.
"""

from __future__ import annotations

import re

FAILURE_REASON_LIMIT = 1024


class ClientError(Exception):
    """The job's input is wrong: hyperparameters, channels or data. Exit code 2."""

    exit_code = 2

    def __init__(self, problems: str | list[str]):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))

    def reason(self) -> str:
        return "ClientError: " + "\n".join(plain(p) for p in self.problems)


class NotAnImage(ClientError):
    """Bytes in no image format the reader decodes, as opposed to an image that is damaged,
    truncated or too large: serving answers 415 for them when the request did not say it sent an
    image (`application/octet-stream`)."""


class AlgorithmError(Exception):
    """A fault of ours (or of the platform); the message says what failed. Exit code 1."""

    exit_code = 1


class TrainingInterrupted(Exception):
    """A stop signal (SIGTERM: docker stop, StopTrainingJob, MaxRuntime) ended the job before
    training could: not an error, the job exits 0."""

    def __init__(self, signal_name: str = "SIGTERM"):
        super().__init__(f"stopped by {signal_name}")
        self.signal_name = signal_name

    def before_training(self) -> str:
        return f"Stopped by {self.signal_name} before training started: no model was written"


def failure_reason(exc: BaseException) -> str:
    """The text for the failure file: ClientError for user faults, AlgorithmError otherwise."""
    if isinstance(exc, ClientError):
        return exc.reason()
    if type(exc) is AlgorithmError:  # its name is the prefix already (subclasses keep theirs)
        return f"AlgorithmError: {plain(str(exc))}"
    return f"AlgorithmError: {type(exc).__name__}: {plain(str(exc))}"


# MXNet's errors carry a C++ traceback ('Traceback ...', '  File "../3rdparty/dmlc-core/...", line 71',
# 'Stack trace:', '  [bt] (0) ...'); the failure reason keeps only what the check said, the log all.
_TRACEBACK = re.compile(
    r'Traceback \(most recent call last\):|\s*File "\.\./[^"\n]*", line \d+|Stack trace:'
    r"|\s*\[bt\] \(\d+\) [^\n]*?\[0x[0-9a-f]+\]"
)
_PREFIX = re.compile(r"\[\d\d:\d\d:\d\d\] \S+:\d+: |MXNetError: ")


def plain(text: str) -> str:
    """`text` without MXNet's C++ traceback: 'Check failed: <C++ condition>: <message>' becomes
    the message. Text without one is returned as it is."""
    if not _TRACEBACK.search(text) and "MXNetError: " not in text:
        return text
    kept = []
    for line in _TRACEBACK.sub("", text).splitlines():
        line = _PREFIX.sub("", line.strip())
        if "Check failed:" in line:
            head, _, check = line.partition("Check failed:")
            line = head + check.rsplit(": ", 1)[-1]
        if line:
            kept.append(line)
    return re.sub(r"([(\[])\s+|\s+([)\]])", r"\1\2", " ".join(kept))
