"""The audit journal: one signed, hash-chained journal of every action on the recordings.

Entries (UTC time, sequence number, previous entry's hash, Ed25519 signature: see
:mod:`gateway.integrity.journal`) go to ``<audit.path>/audit-YYYY-MM.jsonl``, written only by
this application, kept for ``audit.retention`` (1 year by default; the CNIL recommends 6 months
to 1 year for access journals), and synced before the action they record is reported done: an
action whose entry cannot be written does not happen.

Journals of earlier versions (``forward-sessions.jsonl``, ``storage-quarantine.jsonl``: plain
JSON lines) are still read, before the signed one; nothing is written to them any more.

A forward session that was started but never logged as stopped (the daemon died) is closed at
the next start with ``stop_reason: "interrupted"``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from gateway.integrity.journal import Head, JournalError, SignedJournal
from gateway.integrity.keys import Signer

__all__ = ["AUDIT_NAME", "LEGACY_JOURNALS", "AuditError", "AuditLog"]

AUDIT_NAME = "audit"
LEGACY_JOURNALS = ("forward-sessions.jsonl", "storage-quarantine.jsonl")


class AuditError(Exception):
    """The journal could not be written; what it would record must not happen."""


class AuditLog:
    """The box's audit journal, in ``folder`` (``audit.path``)."""

    def __init__(
        self, folder: Path, signer: Callable[[], Signer], *, retention: float | None = None
    ) -> None:
        self.folder = folder
        self.journal = SignedJournal(folder, AUDIT_NAME, signer, retention=retention)

    def append(self, event: str, **fields: Any) -> dict[str, Any]:
        """Write one entry durably; raise :class:`AuditError` if it fails."""
        try:
            return self.journal.append(event, **fields)
        except JournalError as exc:
            raise AuditError(exc.reason) from None

    def head(self) -> Head:
        return self.journal.head()

    @property
    def key_error(self) -> str | None:
        """Why the last entry went unsigned, if it did."""
        return self.journal.last_key_error

    def entries(self) -> Iterator[dict[str, Any]]:
        """Every entry, oldest first: the old plain journals, then the signed one (lines that do
        not parse are skipped); AuditError if a journal exists but cannot be read."""
        for name in LEGACY_JOURNALS:
            yield from _legacy(self.folder / name)
        try:
            for _, _, _, entry in self.journal.entries():
                if entry is not None:
                    yield entry
        except JournalError as exc:
            raise AuditError(exc.reason) from None

    def unfinished(self, start_event: str, stop_event: str) -> list[dict[str, Any]]:
        """Start entries with no stop entry of the same ``session``."""
        open_sessions: dict[str, dict[str, Any]] = {}
        for entry in self.entries():
            session = entry.get("session")
            if not isinstance(session, str):
                continue
            if entry.get("event") == start_event:
                open_sessions[session] = entry
            elif entry.get("event") == stop_event:
                open_sessions.pop(session, None)
        return list(open_sessions.values())


def _legacy(path: Path) -> Iterator[dict[str, Any]]:
    try:
        with path.open(encoding="utf-8") as stream:
            for line in stream:
                try:
                    value = json.loads(line)
                except ValueError:
                    continue
                if isinstance(value, dict):
                    yield value
    except FileNotFoundError:
        return
    except OSError as exc:
        raise AuditError(f"cannot read {path}: {exc.strerror}") from None
