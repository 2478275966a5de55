"""Wall-clock handling: durations use the monotonic clock; wall time only labels things.

A gateway box often boots with a wrong clock that NTP later steps. :class:`ClockWatch` notices a
step so that recordings can be cut and labelled with the corrected time, and
:func:`clock_synchronized` reads the kernel's NTP state.
"""

from __future__ import annotations

import ctypes
import time
from datetime import UTC, datetime

from gateway.host.libc import libc as load_libc

__all__ = [
    "STEP_THRESHOLD",
    "ClockWatch",
    "clock_synchronized",
    "parse_moment",
    "parse_utc_iso",
    "utc_iso",
    "wall_at",
]

STEP_THRESHOLD = 1.0
"""Seconds of disagreement between wall and monotonic clocks that count as a clock step."""


def wall_at(monotonic: float) -> float:
    """Wall-clock time (UNIX seconds) of an instant given on the monotonic clock."""
    return time.time() - (time.monotonic() - monotonic)


def utc_iso(timestamp: float) -> str:
    """``2026-11-25T16:47:52.123Z``."""
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


class ClockWatch:
    """Detects steps of the system clock relative to the monotonic clock."""

    def __init__(self) -> None:
        self._offset = time.time() - time.monotonic()

    def step(self) -> float:
        """Return the step (seconds) since the last call if larger than the threshold, else 0."""
        offset = time.time() - time.monotonic()
        delta = offset - self._offset
        if abs(delta) < STEP_THRESHOLD:
            return 0.0
        self._offset = offset
        return delta


class _Timex(ctypes.Structure):
    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("time_sec", ctypes.c_long),
        ("time_usec", ctypes.c_long),
        ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long),
        ("tai", ctypes.c_int),
        ("padding", ctypes.c_int * 11),
    ]


_TIME_ERROR = 5


def clock_synchronized() -> bool | None:
    """True if the kernel says the clock is NTP-synchronised, None if it cannot be asked."""
    libc = load_libc()
    if libc is None:
        return None
    timex = _Timex()  # modes = 0: a read, which needs no privilege
    try:
        state = libc.adjtimex(ctypes.byref(timex))
    except AttributeError:
        return None
    if state < 0:
        return None
    return bool(state != _TIME_ERROR)


def parse_utc_iso(text: str) -> float:
    """The UNIX time of an ISO 8601 time as :func:`utc_iso` writes it (``…Z``); ValueError."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def parse_moment(text: str, *, naive_is_utc: bool = False) -> float:
    """A time given by a user: UTC ISO 8601 (``2026-12-02T10:00:00Z``), local time with an
    offset (``2026-12-02T11:00:00+01:00``), or a duration ago (``2h``, ``90m``). A time with no
    zone is UTC if ``naive_is_utc``, else refused (an export must not guess). ValueError names
    what is wrong."""
    from gateway.units import parse_duration

    try:
        return time.time() - parse_duration(text)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{text!r} is neither an ISO 8601 time nor a duration such as 2h"
        ) from None
    if when.tzinfo is None:
        if not naive_is_utc:
            raise ValueError(f"{text!r} has no time zone: add Z (UTC) or an offset such as +01:00")
        when = when.replace(tzinfo=UTC)
    return when.timestamp()
