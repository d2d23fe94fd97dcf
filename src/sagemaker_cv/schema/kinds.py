"""Value kinds: how one hyperparameter's text becomes a value, or an `Invalid` that says what
would be valid. Every value arrives as a string; `decode` undoes the encodings callers use.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sagemaker_cv.contract import numbers


class Invalid(ValueError):
    """A kind could not parse a value; the message says what would be valid."""


def decode(raw: Any) -> str:
    """The text of a value as the user meant it (JSON quoting stripped, non-strings stringified)."""
    if isinstance(raw, bool):
        return "True" if raw else "False"
    if not isinstance(raw, str):
        return str(raw)
    text = raw.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        try:
            inner = json.loads(text)
        except json.JSONDecodeError:
            return text
        if isinstance(inner, str):
            return inner.strip()
    return text


@dataclass(frozen=True)
class Kind:
    """How one type of hyperparameter is parsed, described and exported to SageMaker."""

    name: str  # "integer", "float", "boolean", "categorical", "string"
    parse: Callable[[str], Any]
    sagemaker_type: str  # Integer | Continuous | Categorical | FreeText


def parse_int(text: str) -> int:
    """An integer written in ASCII digits ("5", "5.0"); Invalid otherwise."""
    if not numbers.is_integer(text):
        raise Invalid("expected an integer")
    return int(text.split(".")[0])


def _parse_float(text: str) -> float:
    if not numbers.is_decimal(text):
        raise Invalid("expected a number")
    value = float(text)
    if not math.isfinite(value):
        raise Invalid("expected a finite number")
    return value


_TRUE = {"true", "1"}
_FALSE = {"false", "0"}


def _parse_bool(text: str) -> bool:
    low = text.lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise Invalid("expected True/true/1 or False/false/0")


INTEGER = Kind("integer", parse_int, "Integer")
FLOAT = Kind("float", _parse_float, "Continuous")
BOOLEAN = Kind("boolean", _parse_bool, "Categorical")
CATEGORICAL = Kind("categorical", str, "Categorical")
STRING = Kind("string", str, "FreeText")


# ---- converters used by several tables --------------------------------------------------------


def epoch_list(text: str) -> tuple[int, ...]:
    """'10, 20' -> (10, 20): strictly ascending positive epochs."""
    parts = [p.strip() for p in text.replace(";", ",").split(",") if p.strip()]
    if not parts:
        return ()
    try:
        epochs = tuple(parse_int(p) for p in parts)
    except Invalid:
        raise Invalid("expected comma-separated positive integers such as '10, 20'") from None
    if any(e < 1 for e in epochs) or any(b <= a for a, b in zip(epochs, epochs[1:])):
        raise Invalid("expected strictly ascending positive epochs such as '10, 20'")
    return epochs


def regex(text: str) -> str:
    try:
        re.compile(text)
    except re.error as exc:
        raise Invalid(f"expected a valid regular expression ({exc})") from None
    return text
