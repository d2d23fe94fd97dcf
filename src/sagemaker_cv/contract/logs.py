"""Logging in the built-ins' line format: `[06/17/2021 23:33:27 INFO 139686210139968] message`."""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import Any

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


def brief(values: Mapping[Any, Any], *, value_chars: int = 200, keys: int = 100) -> dict:
    """A mapping fit for one log line: long values cut (with their length), at most `keys` keys.
    The user decides what the config files hold; the log must not grow with it."""
    out: dict = {}
    for i, (key, value) in enumerate(values.items()):
        if i == keys:
            out["..."] = f"{len(values) - keys} more"
            break
        if isinstance(value, str) and len(value) > value_chars:
            value = f"{value[: value_chars // 2]}... ({len(value)} characters)"
        elif not isinstance(value, (str, int, float, bool, type(None))) and len(repr(value)) > value_chars:
            value = f"{repr(value)[: value_chars // 2]}... ({len(repr(value))} characters)"
        out[str(key)[:value_chars]] = value
    return out


# ---- pieces of the MetricDefinitions regexes ------------------------------------------------------
# CloudWatch stores a TAB as `#011`; the regexes accept both, so they work on CloudWatch text and on
# raw container output alike.
TAB = r"(?:\t|#011)"
NUM = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"
