"""Event time: durations, timestamps and their text forms.

All times inside tactful are integers: milliseconds since the Unix epoch, UTC.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from streams.errors import ConfigError

MS = 1
SECOND = 1000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR

_UNITS = {"ms": MS, "s": SECOND, "m": MINUTE, "h": HOUR, "d": DAY, "w": 7 * DAY}
# What the grammar below accepts, in words: the README, docs/contract-notes.md and
# `tactful validate --help` say exactly this (tests/test_cli.py checks they do).
DURATION_FORMS = (
    "a whole number and a unit (ms, s, m, h, d, or w for 7 days), or several such parts "
    "written together, which add up: 500ms, 30s, 10m, 72h, 14d, 2w, 1d12h"
)
DURATION_EXPECTED = "expected a duration such as 500ms, 30s, 10m, 72h, 14d, 2w or 1d12h"
_DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w)")
_DURATION_WHOLE = re.compile(r"(?:\d+(?:ms|s|m|h|d|w))+")

# Far enough for any real event, small enough that datetime never overflows.
MIN_TIME_MS = -62_135_596_800_000  # 0001-01-01
MAX_TIME_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999


def parse_duration(text: str) -> int:
    """``"1d12h"`` -> milliseconds. Raises :class:`ValueError` on anything else."""
    if not isinstance(text, str) or not _DURATION_WHOLE.fullmatch(text.strip()):
        raise ValueError(f"{DURATION_EXPECTED}, got {text!r}")
    total = sum(int(n) * _UNITS[u] for n, u in _DURATION.findall(text.strip()))
    return total


def format_duration(ms: int) -> str:
    """Inverse of :func:`parse_duration`, for messages: 90061000 -> ``1d1h1m1s``."""
    if ms == 0:
        return "0s"
    parts = []
    for unit, size in (("d", DAY), ("h", HOUR), ("m", MINUTE), ("s", SECOND), ("ms", MS)):
        n, ms = divmod(ms, size)
        if n:
            parts.append(f"{n}{unit}")
    return "".join(parts)


def parse_time(value: object) -> int:
    """An ``occurred_at`` value -> epoch milliseconds.

    Accepts epoch milliseconds (an int, or an integral float) or an ISO-8601
    string that carries an offset or ``Z``. Raises :class:`ValueError` else.
    """
    if isinstance(value, bool):
        raise ValueError("a boolean is not a time")
    if isinstance(value, int):
        ms = value
    elif isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"epoch milliseconds must be whole, got {value!r}")
        ms = int(value)
    elif isinstance(value, str):
        ms = _parse_iso(value)
    else:
        raise ValueError(f"expected epoch milliseconds or an ISO-8601 string, got {type(value).__name__}")
    if not MIN_TIME_MS <= ms <= MAX_TIME_MS:
        raise ValueError(f"time {value!r} is out of range")
    return ms


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)


def _parse_iso(text: str) -> int:
    # datetime.fromisoformat (C, and since 3.11 it takes "Z") is most of
    # validation's speed on the hot path; integer arithmetic keeps it exact.
    if len(text) > 64:
        raise ValueError(f"expected an ISO-8601 date-time with an offset or Z, got {text[:64]!r}...")
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        s = text.strip()
        if s[-1:] == "z":
            s = s[:-1] + "Z"
        try:
            dt = datetime.fromisoformat(s)
        except ValueError as exc:
            raise ValueError(f"expected an ISO-8601 date-time with an offset or Z, got {text!r}") from exc
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"an ISO-8601 time needs an offset or Z, got {text!r}")
    return (dt - _EPOCH) // _ONE_MS


def format_time(ms: int) -> str:
    """Epoch milliseconds -> ``2026-05-01T10:00:00.000Z`` (ISO-8601 UTC)."""
    secs, millis = divmod(ms, 1000)
    dt = datetime.fromtimestamp(secs, UTC)
    return f"{dt:%Y-%m-%dT%H:%M:%S}.{millis:03d}Z"


def parse_time_option(text: str) -> int:
    """A command-line time (``--until``): epoch milliseconds or ISO-8601."""
    t = text.strip()
    try:
        return parse_time(int(t)) if re.fullmatch(r"-?\d+", t) else parse_time(t)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
