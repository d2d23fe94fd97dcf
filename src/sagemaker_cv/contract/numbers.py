"""How numbers are spelled in config and data files: ASCII digits only.

Python's int() and float() also read '１', '٣' and '1_0', which no config writer or .lst tool
means as numbers; accepting them would train on values the user never wrote.
"""

from __future__ import annotations

import re

INTEGER = re.compile(r"[+-]?[0-9]+(?:\.0*)?", re.ASCII)  # "5", "5.0" (as float formatting writes it)
DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)
INT32_MAX = 2**31 - 1  # MXNet's integer arguments (classes, sizes, batch) are 32-bit


def is_integer(text: str) -> bool:
    return INTEGER.fullmatch(text) is not None


def is_decimal(text: str) -> bool:
    return DECIMAL.fullmatch(text) is not None
