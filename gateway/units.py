"""Sizes, durations and bitrates: the one place that parses and prints them.

Sizes are bytes or a number with a unit: ``500MB`` (decimal), ``2GiB`` (binary).
Durations are seconds or a number with a unit: ``500ms``, ``90s``, ``15m``, ``24h``, ``30d``.
Bitrates are bits per second or a number with a unit: ``800kbit/s``, ``50Mbit/s``.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

from gateway.text import excerpt

__all__ = [
    "format_bitrate",
    "format_duration",
    "format_size",
    "parse_bitrate",
    "parse_duration",
    "parse_size",
]

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
_BITRATE_UNITS: dict[str, float] = {
    "": 1.0,
    "bit/s": 1.0,
    "kbit/s": 1e3,
    "mbit/s": 1e6,
    "gbit/s": 1e9,
}
_NUMBER_UNIT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")
_NUMBER_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*(?:/s)?)\s*$")
_MAX_BITRATE = 1e12
"""1 Tbit/s: no camera link comes near it."""
_MAX_TEXT = 64
"""Longest size or duration text considered: ``1.5GiB`` or ``30d`` are a few characters, and the
digits of a longer one would only feed ``Fraction`` or ``float`` a number nobody means."""
_MAX_DURATION = 100 * 365.25 * 86400.0
"""100 years: far above any limit the configuration takes (``max_age`` is capped at 30 days,
``max_session`` at 12 h), and far below what makes ``format_duration`` or a deadline overflow."""
_MAX_SIZE = 2**63 - 1
"""8 EiB, the largest size SQLite's index and ``os`` calls take (a signed 64-bit integer)."""


def parse_size(value: str | int) -> int:
    """Return a size in bytes; raise ValueError naming the accepted forms (never another error,
    whatever the input: a 3 MB string or an integer of 400 digits is refused like any typo)."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as 500MB or 2GiB, got a boolean")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"size must not be negative, got {excerpt(value)}")
        if value > _MAX_SIZE:
            raise ValueError(f"size {excerpt(value)} is more than 8 EiB")
        return value
    if isinstance(value, float):
        value = repr(value)  # as before: 1.5 reads as "1.5" (one byte), 1e20 as a typo
    if not isinstance(value, str):
        raise ValueError(f"expected a size such as 500MB or 2GiB, got {excerpt(value)}")
    match = _NUMBER_UNIT.match(value) if len(value) <= _MAX_TEXT else None
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _SIZE_UNITS:
        raise ValueError(
            f"invalid size {excerpt(value)}: use bytes or a number with one of "
            "B, kB, MB, GB, TB, KiB, MiB, GiB, TiB (e.g. 500MB, 2GiB)"
        )
    # Exact decimal arithmetic: float("4.1") * 10**6 is 4099999.999..., not 4100000.
    size = int(Fraction(match.group(1)) * _SIZE_UNITS[unit])
    if size > _MAX_SIZE:
        raise ValueError(f"size {excerpt(value)} is more than 8 EiB")
    return size


def parse_duration(value: str | float) -> float:
    """Return a duration in seconds; raise ValueError naming the accepted forms (never another
    error: ``10**400``, ``1e400``, NaN or a 3 MB string are refused like any typo)."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 90s or 30d, got a boolean")
    if isinstance(value, int | float):
        if isinstance(value, float) and math.isnan(value):
            raise ValueError("expected a duration such as 90s or 30d, got NaN")
        if value < 0:
            raise ValueError(f"duration must not be negative, got {excerpt(value)}")
        if value > _MAX_DURATION:
            raise ValueError(f"duration {excerpt(value)} is more than 100 years")
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"expected a duration such as 90s or 30d, got {excerpt(value)}")
    match = _NUMBER_UNIT.match(value) if len(value) <= _MAX_TEXT else None
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _DURATION_UNITS:
        raise ValueError(
            f"invalid duration {excerpt(value)}: use seconds or a number with one of "
            "ms, s, m, h, d (e.g. 90s, 15m, 24h, 30d)"
        )
    seconds = float(match.group(1)) * _DURATION_UNITS[unit]
    if seconds > _MAX_DURATION:
        raise ValueError(f"duration {excerpt(value)} is more than 100 years")
    return seconds


def parse_bitrate(value: str | float) -> float:
    """Return bits per second; raise ValueError naming the accepted forms (never another
    error, whatever the input)."""
    if isinstance(value, bool):
        raise ValueError("expected a bitrate such as 50Mbit/s, got a boolean")
    if isinstance(value, int | float):
        if isinstance(value, float) and math.isnan(value):
            raise ValueError("expected a bitrate such as 50Mbit/s, got NaN")
        if value < 0:
            raise ValueError(f"bitrate must not be negative, got {excerpt(value)}")
        if value > _MAX_BITRATE:
            raise ValueError(f"bitrate {excerpt(value)} is more than 1 Tbit/s")
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"expected a bitrate such as 50Mbit/s, got {excerpt(value)}")
    match = _NUMBER_RATE.match(value) if len(value) <= _MAX_TEXT else None
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _BITRATE_UNITS:
        raise ValueError(
            f"invalid bitrate {excerpt(value)}: use bits per second or a number with one of "
            "bit/s, kbit/s, Mbit/s, Gbit/s (e.g. 800kbit/s, 50Mbit/s)"
        )
    rate = float(match.group(1)) * _BITRATE_UNITS[unit]
    if rate > _MAX_BITRATE:
        raise ValueError(f"bitrate {excerpt(value)} is more than 1 Tbit/s")
    return rate


def format_bitrate(bits_per_second: float) -> str:
    """``50 Mbit/s``, ``800 kbit/s``."""
    for unit, scale in (("Gbit/s", 1e9), ("Mbit/s", 1e6), ("kbit/s", 1e3)):
        if bits_per_second >= scale:
            return f"{bits_per_second / scale:g} {unit}"
    return f"{bits_per_second:g} bit/s"


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
