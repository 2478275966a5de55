"""The audit journal: append-only JSON lines, one file per kind, kept apart from recordings.

Each entry is written with ``O_APPEND`` and synced before the action it records is reported
done. A forward session that was started but never logged as stopped (the daemon died) is
closed at the next start with ``stop_reason: "interrupted"``.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gateway.clock import utc_iso

__all__ = ["AuditError", "AuditLog"]


class AuditError(Exception):
    """The journal could not be written; what it would record must not happen."""


class AuditLog:
    """One journal file, e.g. ``<audit.path>/forward-sessions.jsonl``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def append(self, event: str, **fields: Any) -> dict[str, Any]:
        """Write one entry (with its UTC time) durably; raise :class:`AuditError` if it fails."""
        entry = {"time": utc_iso(time.time()), "event": event, **fields}
        line = (json.dumps(entry, ensure_ascii=False, sort_keys=False) + "\n").encode()
        with self._lock:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
                try:
                    os.write(fd, line)
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError as exc:
                raise AuditError(f"cannot write {self.path}: {exc.strerror}") from None
        return entry

    def entries(self) -> Iterator[dict[str, Any]]:
        """Every entry, oldest first (lines that do not parse are skipped); AuditError if the
        journal exists but cannot be read."""
        try:
            with self.path.open(encoding="utf-8") as stream:
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
            raise AuditError(f"cannot read {self.path}: {exc.strerror}") from None

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
