"""The storage's usage accounting: the segments being written, evictions, and the usage figures.

The index counts finished segments and quarantined files; the segments being written count as
well, each at the larger of its size so far and its expected size, so that retention makes room
for a segment before it has grown rather than after. :meth:`Accounting.refresh` puts the figures
together into the :class:`~gateway.telemetry.state.StorageUsage` the status shows.
"""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

from gateway.storage.index import Index
from gateway.storage.retention import free_bytes
from gateway.telemetry.state import StorageUsage

__all__ = ["Accounting"]


class Accounting:
    """Thread-safe: the recorders report, the storage thread refreshes."""

    def __init__(self, quota: int) -> None:
        self._lock = threading.Lock()
        self._writing: dict[str, tuple[int, int]] = {}
        """Per camera: (bytes written so far, expected size) of the segment being written."""
        self._open_parts: dict[str, Path] = {}
        """Per camera: the ``.part`` file being written (salvaged if its writer dies)."""
        self.evictions: Counter[str] = Counter()
        self.usage = StorageUsage(0, quota, None, 0, None, {}, None)
        """The figures of the last :meth:`refresh`."""

    def opened(self, camera: str, path: Path, expected: int) -> None:
        with self._lock:
            self._writing[camera] = (0, expected)
            self._open_parts[camera] = path

    def open_part(self, camera: str) -> Path | None:
        with self._lock:
            return self._open_parts.get(camera)

    def writing(self, camera: str, size: int) -> None:
        with self._lock:
            _, expected = self._writing.get(camera, (0, 0))
            self._writing[camera] = (size, expected)

    def closed(self, camera: str) -> None:
        with self._lock:
            self._writing.pop(camera, None)
            self._open_parts.pop(camera, None)

    def writing_sizes(self) -> dict[str, int]:
        """Per camera, the bytes its segment being written counts for."""
        with self._lock:
            return {c: max(size, expected) for c, (size, expected) in self._writing.items()}

    def refresh(
        self,
        index: Index,
        root: Path,
        quota: int,
        *,
        error: str | None,
        quarantined: int,
        seal_error: str | None,
    ) -> StorageUsage:
        """Count afresh; the index's figures stay as they were if it cannot be read now."""
        last = self.usage
        try:
            count, total, oldest = index.totals()
        except Exception:
            count, total, oldest = last.segments, last.used, last.oldest
        try:
            free: int | None = free_bytes(root)
        except OSError:
            free = None
        self.usage = StorageUsage(
            used=total + sum(self.writing_sizes().values()),
            quota=quota,
            free=free,
            segments=count,
            oldest=oldest,
            evictions=dict(self.evictions),
            error=error,
            quarantined=quarantined,
            seal_error=seal_error,
        )
        return self.usage
