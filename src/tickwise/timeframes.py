"""Interval strings (`1s`, `1m`, `5m`, `15m`, `1h`, `1d`) and their lengths in nanoseconds."""

from __future__ import annotations

import re

from tickwise.exceptions import InputError

NS_PER_S = 1_000_000_000
_UNITS = {"ms": 1_000_000, "s": NS_PER_S, "m": 60 * NS_PER_S, "h": 3600 * NS_PER_S, "d": 86400 * NS_PER_S}
_PATTERN = re.compile(r"^(\d+)(ms|s|m|h|d)$")


def is_time_zone(name: str) -> bool:
    """Whether ``name`` is an IANA time zone this machine knows.

    Examples
    --------
    >>> is_time_zone("America/New_York"), is_time_zone("Eastern"), is_time_zone("../etc")
    (True, False, False)
    """
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def timeframe_ns(timeframe: str) -> int:
    """Return the length of an interval string in nanoseconds.

    Examples
    --------
    >>> timeframe_ns("5m")
    300000000000
    """
    match = _PATTERN.match(timeframe.strip())
    if match is None or int(match.group(1)) <= 0:
        raise InputError(
            f"timeframe must look like 1s, 1m, 5m, 1h or 1d, was {timeframe!r}"
        )
    return int(match.group(1)) * _UNITS[match.group(2)]


def parse_timeframes(text: str | list[str]) -> list[str]:
    """Split and check a comma-separated list of intervals, shortest first.

    Examples
    --------
    >>> parse_timeframes("5m,1s,1m")
    ['1s', '1m', '5m']
    """
    items = text.split(",") if isinstance(text, str) else list(text)
    names = [t.strip() for t in items if t.strip()]
    if not names:
        raise InputError("at least one timeframe is needed, was empty")
    return sorted(set(names), key=timeframe_ns)
