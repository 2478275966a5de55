"""Sizes and durations: the one place that parses and prints them.

Sizes are bytes or a number with a unit: ``500MB`` (decimal), ``2GiB`` (binary).
Durations are seconds or a number with a unit: ``500ms``, ``90s``, ``15m``, ``24h``, ``30d``.
"""

from __future__ import annotations

import re
from fractions import Fraction

__all__ = ["format_duration", "format_size", "parse_duration", "parse_size"]

_SIZE_UNITS: dict[str, int] = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_DURATION_UNITS: dict[str, float] = {
    "": 1.0,
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}
_NUMBER_UNIT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(value: str | int) -> int:
    """Return a size in bytes; raise ValueError naming the accepted forms."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as 500MB or 2GiB, got a boolean")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"size must not be negative, got {value}")
        return value
    match = _NUMBER_UNIT.match(str(value))
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _SIZE_UNITS:
        raise ValueError(
            f"invalid size {value!r}: use bytes or a number with one of "
            "B, kB, MB, GB, TB, KiB, MiB, GiB, TiB (e.g. 500MB, 2GiB)"
        )
    # Exact decimal arithmetic: float("4.1") * 10**6 is 4099999.999..., not 4100000.
    return int(Fraction(match.group(1)) * _SIZE_UNITS[unit])


def parse_duration(value: str | float) -> float:
    """Return a duration in seconds; raise ValueError naming the accepted forms."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 90s or 30d, got a boolean")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"duration must not be negative, got {value}")
        return float(value)
    match = _NUMBER_UNIT.match(str(value))
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _DURATION_UNITS:
        raise ValueError(
            f"invalid duration {value!r}: use seconds or a number with one of "
            "ms, s, m, h, d (e.g. 90s, 15m, 24h, 30d)"
        )
    return float(match.group(1)) * _DURATION_UNITS[unit]


def format_size(n_bytes: float) -> str:
    """Human-readable binary size: ``1.5 GiB``."""
    value = float(n_bytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def format_duration(seconds: float) -> str:
    """Short human-readable duration: ``45s``, ``12m30s``, ``3h05m``, ``2d04h``."""
    s = round(seconds)
    if s < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"
