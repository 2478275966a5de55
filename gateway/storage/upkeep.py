"""What the storage thread keeps up besides segments: legal holds and the journals' retention.

Before each retention pass, holds past their limit are released (and journalled) and the ranges
of the others are read; once an hour, the months of the audit journal and of the seal chains
older than ``audit.retention`` are removed.
"""

from __future__ import annotations

import logging
import time

from gateway.integrity.audit import AuditError, AuditLog
from gateway.integrity.journal import JournalError
from gateway.integrity.seal import Sealer
from gateway.storage.errors import StorageError
from gateway.storage.holds import HoldError, HoldStore
from gateway.storage.retention import HeldRange

__all__ = ["JOURNAL_EXPIRY_INTERVAL", "Upkeep"]

log = logging.getLogger(__name__)

JOURNAL_EXPIRY_INTERVAL = 3600.0


class Upkeep:
    """Used by the storage thread only."""

    def __init__(
        self, holds: HoldStore | None, audit: AuditLog | None, sealer: Sealer | None
    ) -> None:
        self.holds = holds
        self._audit = audit
        self._sealer = sealer
        self._last_held: list[HeldRange] | None = None
        self._next_expiry = 0.0

    def held(self) -> list[HeldRange]:
        """Ranges retention must keep; holds past their limit are released (journalled) first.

        If the holds file becomes unreadable, the ranges last read stay held (and the error is
        reported); if it never could be read, retention waits rather than evict evidence.
        """
        holds = self.holds
        if holds is None:
            return []
        try:
            for hold in holds.expired():
                if self._audit is not None:
                    self._audit.append(
                        "hold_expired", hold=hold.id, case=hold.case, cameras=list(hold.cameras)
                    )
                holds.release(hold.id)
                log.info("hold %s (case %s) reached its limit and was released", hold.id, hold.case)
            self._last_held = holds.ranges()
        except (HoldError, AuditError) as exc:
            reason = exc.reason if isinstance(exc, HoldError) else str(exc)
            if self._last_held is None:
                raise StorageError(f"holds unavailable, retention waits: {reason}") from None
            log.error("storage: holds unavailable (%s); keeping the holds last read", reason)
        return self._last_held

    def expire_journals(self) -> None:
        """Once an hour: remove the months of the audit journal and of the seal chains that are
        older than ``audit.retention`` (each removal is journalled)."""
        now = time.monotonic()
        if now < self._next_expiry:
            return
        self._next_expiry = now + JOURNAL_EXPIRY_INTERVAL
        try:
            if self._audit is not None:
                for path in self._audit.journal.expire():
                    log.info("audit journal: %s is past audit.retention, removed", path.name)
            if self._sealer is not None:
                self._sealer.expire()
        except JournalError as exc:
            log.error("journal retention: %s", exc.reason)
