"""Durations written the way people write them in YAML: 24h, 90m, 1h30m, 2d, 3600."""

from __future__ import annotations

import math
import re

_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_PART = re.compile(r"(\d+(?:\.\d+)?)([dhms])")
MAX_SECONDS = 365 * 86400


def parse_seconds(value: object) -> int:
    """Seconds in a duration; bare numbers are seconds. ValueError says how to write one."""
    try:
        seconds = _seconds(value)
    except OverflowError:  # float() of an integer with 309+ digits
        seconds = math.inf
    if not 0 < seconds <= MAX_SECONDS:
        shown = value if len(repr(value)) <= 40 else f"{repr(value)[:37]}..."
        raise ValueError(f"duration must be more than 0s and at most 365d, got {shown}")
    return math.ceil(seconds)


def _seconds(value: object) -> float:
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 24h, 90m or 1h30m, got a boolean")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        if re.fullmatch(r"\d+(\.\d+)?", text):
            seconds = float(text)
        elif text and _PART.sub("", text) == "":
            seconds = sum(float(n) * _UNITS[u] for n, u in _PART.findall(text))
        else:
            raise ValueError(f"{value!r} is not a duration; write e.g. 24h, 90m, 1h30m, 2d or 3600 (seconds)")
    else:
        raise ValueError("expected a duration such as 24h, 90m or 1h30m")
    return seconds


def format_seconds(seconds: float) -> str:
    """1h30m5s, or 4.2s under a minute: short and exact, for tables and summaries."""
    if 0 < seconds < 60:
        return f"{seconds:.1f}s"
    seconds = int(seconds)
    if seconds <= 0:
        return "0s"
    out = ""
    for unit, size in _UNITS.items():
        amount, seconds = divmod(seconds, size)
        if amount:
            out += f"{amount}{unit}"
    return out


def iso_timestamp(value: object) -> float | None:
    """Epoch seconds of an ISO 8601 / RFC 3339 time as providers send it ("2025-05-13T02:18:51Z", or with an
    offset); anything else is None (unknown), never an error: it is read back from a provider."""
    if not isinstance(value, str) or not value:
        return None
    import datetime

    try:
        return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
