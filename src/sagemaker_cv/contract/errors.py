"""User errors (ClientError) kept apart from our own faults (AlgorithmError).

SageMaker shows the first 1024 characters of /opt/ml/output/failure as FailureReason, so a
ClientError's text puts every problem first, one per line, shortest and most actionable first.
"""

from __future__ import annotations

FAILURE_REASON_LIMIT = 1024


class ClientError(Exception):
    """The job's input is wrong: hyperparameters, channels or data. Exit code 2."""

    exit_code = 2

    def __init__(self, problems: str | list[str]):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))

    def reason(self) -> str:
        return "ClientError: " + "\n".join(self.problems)


class AlgorithmError(Exception):
    """A fault of ours (or of the platform); the message says what failed. Exit code 1."""

    exit_code = 1


class TrainingInterrupted(Exception):
    """Raised inside the loop when SIGTERM asks the job to stop (not an error)."""


def failure_reason(exc: BaseException) -> str:
    """The text for the failure file: ClientError for user faults, AlgorithmError otherwise."""
    if isinstance(exc, ClientError):
        return exc.reason()
    return f"AlgorithmError: {type(exc).__name__}: {exc}"
