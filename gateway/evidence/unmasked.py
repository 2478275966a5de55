"""When a camera's privacy mask was missing, from the audit journal: an export of those
moments may show private areas (Code de la construction et de l'habitation, L126-1-1), which
the officer must be told before the footage goes anywhere.

Periods come from the ``camera_integrity`` entries of condition ``privacy_mask_missing``. One
left open when the daemon stopped is taken to last until the next start of the daemon (which
raises it again within ``analysis.min_duration`` if the mask is still missing), or to the end
of what is asked for.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from gateway.clock import parse_utc_iso, utc_iso
from gateway.integrity.audit import AuditError

__all__ = ["MaskRecord", "describe_period", "unmasked_periods"]

MASK_CONDITION = "privacy_mask_missing"


def unmasked_periods(
    entries: Iterable[dict[str, Any]], camera: str, start: float, end: float
) -> list[tuple[float, float]]:
    """The spans of ``[start, end]`` during which ``camera``'s mask was missing, in order."""
    periods: list[tuple[float, float]] = []
    since: float | None = None
    for entry in entries:
        event = entry.get("event")
        if event == "daemon_started" and since is not None:
            periods.append((since, _time(entry, "time") or since))
            since = None
        if event != "camera_integrity" or entry.get("camera") != camera:
            continue
        if entry.get("condition") != MASK_CONDITION:
            continue
        at = _time(entry, "at") or _time(entry, "time")
        if at is None:
            continue
        if entry.get("active") is True and since is None:
            since = at
        elif entry.get("active") is False and since is not None:
            periods.append((since, at))
            since = None
    if since is not None:
        periods.append((since, max(since, end)))
    return [(max(a, start), min(b, end)) for a, b in periods if b >= start and a <= end]


def describe_period(camera: str, period: tuple[float, float]) -> str:
    first, last = period
    return (
        f"camera {camera}: a privacy mask was missing from {utc_iso(first)} to {utc_iso(last)}; "
        "these images may show private areas (CCH L126-1-1): hide them before handing over"
    )


def _time(entry: dict[str, Any], key: str) -> float | None:
    value = entry.get(key)
    if not isinstance(value, str):
        return None
    try:
        return parse_utc_iso(value)
    except ValueError:
        return None


class MaskRecord:
    """The journal's privacy-mask periods for an export, the journal read once when needed."""

    def __init__(self, read: Callable[[], Iterable[dict[str, Any]]]) -> None:
        self._read = read
        self._entries: list[dict[str, Any]] | None = None

    def missing(
        self, camera: str, start: float, end: float, warnings: list[str]
    ) -> list[dict[str, str]]:
        """The periods for the manifest; a warning for each (or for a journal unread)."""
        if self._entries is None:
            try:
                self._entries = list(self._read())
            except AuditError as exc:
                warnings.append(
                    f"camera {camera}: the audit journal cannot be read ({exc}): whether its "
                    "privacy masks were in place is unknown"
                )
                return []
        periods = unmasked_periods(self._entries, camera, start, end)
        warnings.extend(describe_period(camera, period) for period in periods)
        return [{"start": utc_iso(first), "end": utc_iso(last)} for first, last in periods]
