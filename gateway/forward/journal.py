"""The forward sessions' entries in the audit journal: what each one says, in one place.

Every session start, extension and stop is appended to the signed audit journal
(:class:`~gateway.integrity.audit.AuditLog`), synced to disk before the command is answered:
that journal is what a data protection officer reads to check that images reached the police
only for the time of an intervention. The methods raise
:class:`~gateway.integrity.audit.AuditError` when an entry cannot be written; what follows is
the manager's rule (a start or an extension that cannot be journalled does not happen; a stop
happens anyway), not this module's.

A write waits for an ``fsync`` (milliseconds, longer on a loaded SD card), so the manager calls
these outside its lock.
"""

from __future__ import annotations

import logging
from typing import Any

from gateway.clock import utc_iso
from gateway.forward.commands import ForwardCommand
from gateway.integrity.audit import AuditError, AuditLog

__all__ = ["EXTENDED", "STARTED", "STOPPED", "SessionJournal"]

log = logging.getLogger(__name__)

STARTED, EXTENDED, STOPPED = "forward_started", "forward_extended", "forward_stopped"


class SessionJournal:
    """Formats the entries of one site's forward sessions and writes them to ``audit``."""

    def __init__(self, audit: AuditLog, *, site_id: str) -> None:
        self.audit = audit
        self.site_id = site_id

    def started(
        self,
        *,
        session: str,
        camera: str,
        origin: str,
        requested_by: str,
        reason: str,
        requested: float | None,
        max_session: float,
        target: str,
    ) -> None:
        """A session is about to start; ``requested`` None: continuous (the configuration)."""
        self.audit.append(
            STARTED,
            session=session,
            site=self.site_id,
            camera=camera,
            mode="continuous" if requested is None else "on_demand",
            origin=origin,
            requested_by=requested_by,
            reason=reason,
            requested_duration=requested,
            max_session=None if requested is None else max_session,
            target=target,
        )

    def extended(self, *, session: str, command: ForwardCommand) -> None:
        """A session's deadline is about to move to ``command.duration`` from now."""
        self.audit.append(
            EXTENDED,
            session=session,
            site=self.site_id,
            camera=command.camera,
            origin=command.origin,
            requested_by=command.requested_by,
            reason=command.reason,
            requested_duration=command.duration,
        )

    def stop_entry(
        self,
        *,
        session: str,
        camera: str,
        stop_reason: str,
        command: ForwardCommand | None,
        started: float,
        requested: float | None,
        duration: float,
        bytes_sent: int,
        dropped_frames: int,
        reconnects: int,
    ) -> dict[str, Any]:
        """What a stop records (and what its command is answered with). ``command`` None: the
        gateway stopped it (expiry, reload, shutdown); ``started`` is wall time."""
        return {
            "session": session,
            "site": self.site_id,
            "camera": camera,
            "stop_reason": stop_reason,
            "origin": command.origin if command else "gateway",
            "stopped_by": command.requested_by if command else "gateway",
            "reason": command.reason if command else None,
            "started": utc_iso(started),
            "requested_duration": requested,
            "duration": round(duration, 3),
            "bytes_sent": bytes_sent,
            "dropped_frames": dropped_frames,
            "reconnects": reconnects,
        }

    def stopped(self, entry: dict[str, Any]) -> None:
        """Write a :meth:`stop_entry`."""
        self.audit.append(STOPPED, **entry)

    def close_interrupted(self) -> None:
        """Close the sessions a crash of the daemon left open, as ``interrupted``.

        Called once at start, before any session of this run exists. Neither an unreadable
        nor an unwritable journal stops the daemon: both are logged, and the sessions stay
        open in the journal until a start that can write it.
        """
        try:
            unfinished = self.audit.unfinished(STARTED, STOPPED)
        except AuditError as exc:
            log.error("forward journal unreadable: %s", exc)
            return
        for entry in unfinished:
            try:
                self.audit.append(
                    STOPPED,
                    session=entry["session"],
                    site=entry.get("site", self.site_id),
                    camera=entry.get("camera"),
                    stop_reason="interrupted",
                    origin="gateway",
                    stopped_by="gateway",
                    reason="the gateway stopped without closing this session",
                    started=entry.get("time"),
                    requested_duration=entry.get("requested_duration"),
                    duration=None,
                    bytes_sent=None,
                    dropped_frames=None,
                    reconnects=None,
                )
            except AuditError as exc:
                log.error("cannot close interrupted forward sessions in the journal: %s", exc)
                return
            log.warning(
                "forward session %s of camera %s was interrupted (the gateway stopped); "
                "journalled as such",
                entry["session"],
                entry.get("camera"),
            )
