"""A camera's integrity changes said everywhere: a log line, an event (``P/events``) and a
journal entry, with the hashes of the snapshots before and after, and the forward held back or
let go when a privacy mask goes missing or comes back."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from gateway.clock import utc_iso
from gateway.daemon.workers.handle import Gate
from gateway.daemon.workers.messages import TamperChanged
from gateway.telemetry.events import EventKind, EventSink

__all__ = ["JOURNAL_EVENT", "Journal", "announce_change", "announce_gate"]

log = logging.getLogger(__name__)

JOURNAL_EVENT = "camera_integrity"
"""The audit journal's entry for a condition raised or cleared."""

Journal = Callable[..., None]
"""Writes one audit journal entry: ``journal(event, **fields)``; never raises."""

_SAID = {
    "covered": "its picture is covered (uniform or black)",
    "defocused": "its picture is out of focus",
    "moved": "it no longer films its learned view (moved)",
    "privacy_mask_missing": "a privacy zone shows content: its mask is missing",
}


def announce_change(
    camera: str, change: TamperChanged, events: EventSink, journal: Journal
) -> None:
    what = _SAID[change.condition]
    shift = change.shift
    measured = (
        f" (shift {shift.percent:.1f} % of the width, {shift.rotation:+.1f}°)"
        if shift is not None and change.condition == "moved"
        else ""
    )
    if change.unmasked:
        measured = f" (zone {', '.join(change.unmasked)})"
    if change.active:
        log.warning("camera %s: %s%s", camera, what, measured)
    else:
        log.info("camera %s: no longer the case that %s", camera, what)
    fields: dict[str, Any] = {"condition": change.condition, "state": change.state}
    if shift is not None:
        fields.update(shift_percent=round(shift.percent, 2), rotation=round(shift.rotation, 2))
    if change.unmasked:
        fields["zones"] = ",".join(change.unmasked)
    if change.condition == "privacy_mask_missing":
        kind: EventKind = "privacy_mask_missing" if change.active else "privacy_mask_restored"
        events.emit(kind, camera=camera, **{k: v for k, v in fields.items() if k != "condition"})
    else:
        events.emit(
            "tamper_detected" if change.active else "tamper_cleared", camera=camera, **fields
        )
    journal(
        JOURNAL_EVENT,
        camera=camera,
        condition=change.condition,
        active=change.active,
        state=change.state,
        at=utc_iso(change.at),
        shift=None if shift is None else shift.model_dump(),
        unmasked=list(change.unmasked),
        structure=change.structure,
        sharpness_ratio=change.sharpness_ratio,
        before_sha256=change.before_sha256,
        before_at=None if change.before_at is None else utc_iso(change.before_at),
        after_sha256=change.after_sha256,
        after_at=None if change.after_at is None else utc_iso(change.after_at),
    )


def announce_gate(
    camera: str,
    gate: Gate,
    *,
    session: str | None,
    reason: str,
    events: EventSink,
    journal: Journal,
) -> None:
    """The forward held back (``suspended``) or let go (``resumed``)."""
    if gate == "suspended":
        log.warning("camera %s: forward to the centre suspended: %s", camera, reason)
        events.emit("forward_suspended", camera=camera, session=session, reason=reason)
        journal("forward_suspended", camera=camera, session=session, reason=reason)
    else:
        log.info("camera %s: privacy masks back; forward to the centre resumed", camera)
        events.emit("forward_resumed", camera=camera, session=session)
        journal("forward_resumed", camera=camera, session=session, reason="privacy masks back")
