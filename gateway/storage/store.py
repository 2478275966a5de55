"""The storage area of one box: its root folder, lock, index, retention thread and health.

The daemon holds an exclusive lock on the root so that two processes never write one ring
buffer. A marker file tells the storage we initialised from an empty mount point left behind
when a disk goes away: recording then stops with a clear error instead of filling the system disk.

:class:`Storage` puts together what its own modules do: the usage accounting
(:mod:`~gateway.storage.accounting`), the storage thread's backlog of indexing and salvage
(:mod:`~gateway.storage.backlog`), the index's replacement and rebuild
(:mod:`~gateway.storage.index_keeper`), holds and journal expiry (:mod:`~gateway.storage.upkeep`).
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from gateway.integrity.audit import AuditLog
from gateway.integrity.seal import Sealer
from gateway.storage.accounting import Accounting
from gateway.storage.backlog import Backlog
from gateway.storage.errors import StorageError
from gateway.storage.holds import HoldStore
from gateway.storage.index import Index, IndexCorrupt
from gateway.storage.index_keeper import IndexKeeper
from gateway.storage.naming import MARKER_NAME, final_path, segment_path
from gateway.storage.quarantine import Quarantine, audit_journal
from gateway.storage.record import Segment
from gateway.storage.recovery import RecoveryReport, reconcile
from gateway.storage.retention import Eviction, RetentionPolicy, enforce
from gateway.storage.sealing import SealingPass
from gateway.storage.upkeep import Upkeep
from gateway.telemetry.events import EventBus
from gateway.telemetry.state import StorageUsage

__all__ = ["INDEX_NAME", "LOCK_NAME", "Storage", "StorageError"]

log = logging.getLogger(__name__)

INDEX_NAME = "index.sqlite3"
LOCK_NAME = ".lock"
RETENTION_INTERVAL = 1.0
STUCK_AFTER = 5.0
"""Seconds inside one disk operation after which the storage counts as not answering (a dying
SD card, a hung mount): reported as a storage error, while live forwarding goes on."""


class Storage:
    """Opened once by the daemon; shared by every camera's recorder."""

    def __init__(
        self,
        root: Path,
        policy: RetentionPolicy,
        *,
        events: EventBus | None = None,
        audit: AuditLog | None = None,
        sealer: Sealer | None = None,
        holds: HoldStore | None = None,
    ) -> None:
        self.root = root
        self.sealer = sealer
        self._sealing = SealingPass(root, events, sealer) if sealer is not None else None
        self.holds = holds
        self._upkeep = Upkeep(holds, audit, sealer)
        self._events = events
        self.policy = policy
        index = Index(root / INDEX_NAME)
        self._journal = audit_journal(audit) if audit is not None else None
        self.quarantine = Quarantine(root, index, self._journal)
        self._keeper = IndexKeeper(root, index, self.quarantine, events)
        self._account = Accounting(policy.quota)
        self.evictions = self._account.evictions
        self.recorded_cameras = 1
        """How many cameras share the quota (sets each one's largest segment)."""
        self._backlog = Backlog()
        """Work handed over by the recorders and the camera supervision loop (indexing,
        salvage), which must never wait on the disk themselves."""
        self._wake = threading.Event()
        self._busy_since: float | None = None
        self._last_error_log = 0.0
        self._stop = threading.Event()
        self._lock_fd: int | None = None
        self._thread: threading.Thread | None = None
        self._error: str | None = None
        self._ready = False

    # -- life cycle -------------------------------------------------------------------------

    def open(self) -> RecoveryReport | None:
        """Create the root if needed, take the lock, repair interrupted segments, reconcile.

        Returns None when the storage cannot be used yet (read-only, missing disk...): the
        daemon runs on and the retention thread retries. Raises StorageError only when another
        process holds the storage, which retrying will not fix.
        """
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            if self._lock_fd is None:
                self._take_lock()
            (self.root / MARKER_NAME).touch()
            report = reconcile(self.root, self.index, quarantine=self.quarantine)
        except IndexCorrupt as exc:
            self._keeper.replace(f"damaged ({exc.reason})")
            self._ready = True
            self._error = None
            self._refresh()
            self._wake.set()
            return RecoveryReport()
        except (OSError, sqlite3.Error) as exc:
            reason = f"cannot use storage {self.root}: {_os_reason(exc)}"
            if reason != self._error:
                log.error("%s; recording starts once it can", reason)
            self._error = reason
            self._refresh()
            return None
        self._ready = True
        self._error = None
        self._keeper.opened()
        log.info("storage %s ready: %s", self.root, report.summary())
        self._refresh()
        self._wake.set()  # retention runs at once
        return report

    @property
    def index(self) -> Index:
        """The index in use (a new one, being rebuilt, once a damaged one was set aside)."""
        return self._keeper.index

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="gateway:storage", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(5)
        self._flush_pending()
        if waiting := len(self._backlog):
            log.warning("%d segment(s) not indexed yet; they will be at next start", waiting)
        self.index.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _take_lock(self) -> None:
        fd = os.open(self.root / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StorageError(
                f"storage {self.root} is in use by another camera-gateway process"
            ) from None
        self._lock_fd = fd

    # -- used by recorders -----------------------------------------------------------------

    def new_segment(self, camera: str, start: float) -> Path:
        """Path for a new segment; raises StorageError if the storage is not usable now."""
        self.check()
        usage = self._account.usage
        if usage.free is not None and usage.free < self.policy.min_free and not usage.segments:
            raise StorageError("free space below storage.min_free and no recording left to evict")
        path = segment_path(self.root, camera, start)
        while path.exists() or final_path(path).exists():
            start += 0.001  # same millisecond (clock stepped back): next free name
            path = segment_path(self.root, camera, start)
        return path

    def refusal(self) -> str | None:
        """Why a new segment would be refused now (None: it would not)."""
        if not self._ready:
            return self._error or f"storage {self.root} is not ready"
        usage = self._account.usage
        if usage.free is not None and usage.free < self.policy.min_free and not usage.segments:
            return "free space below storage.min_free and no recording left to evict"
        return None

    def check(self) -> None:
        """Raise StorageError if the root has vanished or is a different, unprepared folder."""
        if not self._ready:
            raise StorageError(self._error or f"storage {self.root} is not ready")
        marker = self.root / MARKER_NAME
        if marker.exists():
            return
        if not self.root.is_dir():
            raise StorageError(f"storage {self.root} has vanished")
        if os.path.ismount(self.root):
            # A freshly mounted, empty filesystem: adopt it.
            try:
                marker.touch()
            except OSError as exc:
                raise StorageError(f"cannot prepare new storage: {exc.strerror}") from None
            log.warning("storage %s is a new filesystem; recording continues on it", self.root)
            self.index.close()
            return
        raise StorageError(
            f"storage {self.root} lost its marker file: disk unmounted? "
            "not recording onto the system disk"
        )

    @property
    def segment_max_bytes(self) -> int:
        """A quarter of a camera's fair share of the quota (between 1 MiB and 4 GiB): the
        largest segment a camera may write before it is cut, so that a camera whose segment
        never ends (no keyframe) cannot take more than its share with one file."""
        share = self.policy.quota // max(1, self.recorded_cameras)
        return min(4 * 1024**3, max(1024**2, share // 4))

    def opened(self, camera: str, path: Path, expected: int) -> None:
        """A camera started the segment ``path``, expected to grow to ``expected`` bytes.

        Retention makes room for the expected size at once, so that the total stays within the
        quota while the segment grows, rather than catching up after it was written.
        """
        self._account.opened(camera, path, expected)
        self._wake.set()

    def open_part(self, camera: str) -> Path | None:
        """The ``.part`` the camera is writing, if any."""
        return self._account.open_part(camera)

    def writing(self, camera: str, size: int) -> None:
        """Report the size of the segment a camera is writing."""
        self._account.writing(camera, size)

    def closed(self, camera: str) -> None:
        """The camera's segment is finished (and indexed) or abandoned."""
        self._account.closed(camera)

    def finished(self, segment: Segment) -> None:
        """Index a segment that was closed normally (retried later if the index fails now)."""
        self._backlog.add_segment(segment)
        self._flush_pending()
        self._wake.set()

    def salvage(self, part: Path) -> None:
        """Keep what an interrupted ``.part`` file holds, after a write error (now or later)."""
        self._backlog.add_part(part)
        self._flush_pending()
        self._wake.set()

    def _flush_pending(self) -> None:
        self._backlog.flush(self.root, self.index, self.quarantine)

    def request_retention(self) -> None:
        self._wake.set()

    def submit(self, job: Callable[[], None]) -> None:
        """Run ``job`` on the storage thread, soon; for callers that must not block on I/O."""
        self._backlog.submit(job)
        self._wake.set()

    def stuck_for(self) -> float:
        """Seconds the storage thread has been inside one piece of work (0 when idle)."""
        since = self._busy_since
        return 0.0 if since is None else time.monotonic() - since

    # -- retention and usage ---------------------------------------------------------------

    @property
    def usage(self) -> StorageUsage:
        """The latest totals; while the storage thread is stuck on the disk, say so."""
        usage = self._account.usage
        stuck = self.stuck_for()
        if stuck > STUCK_AFTER:
            usage = dataclasses.replace(usage, error=f"storage not answering for {stuck:.0f} s")
        return usage

    def enforce_now(self) -> list[Eviction]:
        writing = self._account.writing_sizes()
        evicted = enforce(
            self.index, self.root, self.policy, writing=writing, held=self._upkeep.held()
        )
        for eviction in evicted:
            self.evictions[eviction.reason] += 1
            if self._sealing is not None:
                self._sealing.evicted(eviction)
            if self._events is not None:
                segment = eviction.segment
                self._events.emit(
                    "storage_evicted",
                    camera=segment.camera,
                    reason=eviction.reason,
                    start=segment.start,
                    bytes=segment.bytes,
                )
        self._refresh()
        return evicted

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(RETENTION_INTERVAL)
            self._wake.clear()
            if self._stop.is_set():
                break
            self._busy_since = time.monotonic()
            try:
                self._backlog.run_jobs()
                self._turn()
            finally:
                self._busy_since = None
        self._backlog.run_jobs()

    def _turn(self) -> None:
        """Once a second, and when woken: check the root, index what waits, enforce retention."""
        if not self._ready:
            self.open()
            return
        try:
            self.check()
            self._keeper.check()
            if self._keeper.rebuild_due:
                self._keeper.rebuild()
            self._flush_pending()
            if self._sealing is not None:
                self._sealing.run(self.index)
            self.enforce_now()
            self._upkeep.expire_journals()
            if self._error is not None:
                log.info("storage %s is usable again", self.root)
                if self._events is not None:
                    self._events.emit("storage_recovered")
            self._error = None
        except IndexCorrupt as exc:
            self._keeper.replace(f"damaged ({exc.reason})")
        except Exception as exc:  # StorageError, OSError, sqlite3.Error: reported, retried
            reason = exc.reason if isinstance(exc, StorageError) else _os_reason(exc)
            now = time.monotonic()
            if reason != self._error or now - self._last_error_log > 60:
                log.error("storage: %s", reason)
                self._last_error_log = now
            if reason != self._error and self._events is not None:
                self._events.emit("storage_error", reason=reason)
            self._error = reason
            self._refresh()

    def _refresh(self) -> None:
        self._account.refresh(
            self.index,
            self.root,
            self.policy.quota,
            error=self._error,
            quarantined=self.quarantine.count,
            seal_error=self._sealing.error if self._sealing is not None else None,
        )


def _os_reason(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        if exc.errno == errno.ENOSPC:
            return "disk full"
        if exc.errno == errno.EROFS:
            return "filesystem is read-only"
        return exc.strerror or type(exc).__name__
    return f"{type(exc).__name__}: {exc}"
