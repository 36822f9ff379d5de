"""Durations as written in specs (`30d`, `1h30m`, `2w`).

Owns only parsing; must not read a clock or do I/O.
"""

from __future__ import annotations

import re
from datetime import timedelta

_PART = re.compile(r"([0-9]+)(s|m|h|d|w)")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str, *, field: str) -> timedelta:
    """Parse `<n><unit>…`; ValueError naming `field` when malformed or zero."""
    if not text or _PART.sub("", text) != "":
        raise ValueError(f"{field}: {text!r} is not a duration like 30d, 12h or 1h30m")
    seconds = sum(int(n) * _UNITS[unit] for n, unit in _PART.findall(text))
    if seconds <= 0:
        raise ValueError(f"{field}: duration must be positive, got {text!r}")
    return timedelta(seconds=seconds)
