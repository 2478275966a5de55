"""The storage thread's backlog: segments waiting to be indexed or salvaged, and deferred jobs.

What the recorders and the camera supervision loop hand over without waiting on the disk: a
finished segment's row, a ``.part`` whose writer gave up, or any job (indexing, salvage). The
storage thread works through them; what fails (the disk full, the index on a failing disk) waits
for the next turn instead of being lost.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path

from gateway.storage.index import Index
from gateway.storage.quarantine import Quarantine
from gateway.storage.record import Segment
from gateway.storage.recovery import salvage

__all__ = ["Backlog"]

log = logging.getLogger(__name__)


class Backlog:
    """Thread-safe: added to from any thread, worked through on the storage thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._unindexed: list[Segment] = []
        self._unsalvaged: list[Path] = []
        self._jobs: deque[Callable[[], None]] = deque()

    def __len__(self) -> int:
        """Segments not indexed yet (salvages included)."""
        with self._lock:
            return len(self._unindexed) + len(self._unsalvaged)

    def add_segment(self, segment: Segment) -> None:
        with self._lock:
            self._unindexed.append(segment)

    def add_part(self, part: Path) -> None:
        with self._lock:
            self._unsalvaged.append(part)

    def submit(self, job: Callable[[], None]) -> None:
        with self._lock:
            self._jobs.append(job)

    def flush(self, root: Path, index: Index, quarantine: Quarantine) -> None:
        """Salvage and index what earlier attempts could not, e.g. while the disk was full."""
        with self._flushing:
            with self._lock:
                parts, self._unsalvaged = self._unsalvaged, []
            for part in parts:
                try:
                    row = (
                        salvage(root, part, quarantine=quarantine, quiet=True)
                        if part.exists()
                        else None
                    )
                except OSError:
                    with self._lock:
                        self._unsalvaged.append(part)
                    continue
                if row is not None:
                    with self._lock:
                        self._unindexed.append(row)
            with self._lock:
                rows, self._unindexed = self._unindexed, []
            if not rows:
                return
            try:
                index.add_many(rows)
            except Exception as exc:  # the index is on the failing disk: keep the rows
                with self._lock:
                    self._unindexed[:0] = rows
                log.debug("index update postponed (%s): %d segment(s) waiting", exc, len(rows))

    def run_jobs(self) -> None:
        """Run the submitted jobs, in order; one that fails is logged and the others run."""
        while True:
            with self._lock:
                if not self._jobs:
                    return
                job = self._jobs.popleft()
            try:
                job()
            except Exception:  # one bad file or bug must not stop the storage thread
                log.exception("storage: a deferred task failed")
