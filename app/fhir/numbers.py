"""Whole numbers from URLs, headers and paging tokens: ASCII digits only, within bounds.

str.isdigit() accepts "²" and Arabic-Indic digits, which int() then refuses or reads as
something else; every number a client writes goes through here instead.
"""

from __future__ import annotations

import re

_DIGITS = re.compile(r"[0-9]{1,10}")
MAX_VERSION = 2**31 - 1


def ascii_int(text: str, *, minimum: int = 0, maximum: int = MAX_VERSION) -> int:
    """Parse text as a bounded non-negative integer; ValueError when it is not one."""
    if _DIGITS.fullmatch(text) is None:
        raise ValueError(f"{text!r} is not a whole number")
    value = int(text)
    if not minimum <= value <= maximum:
        raise ValueError(f"{value} is outside {minimum}..{maximum}")
    return value
