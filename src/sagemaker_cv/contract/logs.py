"""Logging in the built-ins' line format: `[06/17/2021 23:33:27 INFO 139686210139968] message`."""

from __future__ import annotations

import logging
import sys

LOGGER_NAME = "sagemaker_cv"


class _StdoutHandler(logging.StreamHandler):
    """Writes to whatever sys.stdout is at the time (test runners swap it)."""

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, value):
        pass


def setup(level: int = logging.INFO) -> logging.Logger:
    logger = logging.getLogger(LOGGER_NAME)
    if not any(getattr(h, "_sagemaker_cv", False) for h in logger.handlers):
        handler = _StdoutHandler()
        handler.setFormatter(
            logging.Formatter(
                "[%(asctime)s %(levelname)s %(thread)d] %(message)s", datefmt="%m/%d/%Y %H:%M:%S"
            )
        )
        handler._sagemaker_cv = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    return logger


def get(name: str = "") -> logging.Logger:
    return logging.getLogger(LOGGER_NAME + ("." + name if name else ""))


# ---- pieces of the MetricDefinitions regexes ------------------------------------------------------
# CloudWatch stores a TAB as `#011`; the regexes accept both, so they work on CloudWatch text and on
# raw container output alike.
TAB = r"(?:\t|#011)"
NUM = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"
