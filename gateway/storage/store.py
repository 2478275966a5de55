"""The storage area of one box: its root folder, lock, index, retention thread and health.

The daemon holds an exclusive lock on the root so that two processes never write one ring
buffer. A marker file tells the storage we initialised from an empty mount point left behind
when a disk goes away: recording then stops with a clear error instead of filling the system disk.
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
from collections import Counter, deque
from collections.abc import Callable
from pathlib import Path

from gateway.integrity.audit import AuditError, AuditLog
from gateway.integrity.journal import JournalError
from gateway.integrity.seal import Sealer
from gateway.storage.errors import StorageError
from gateway.storage.holds import HoldError, HoldStore
from gateway.storage.index import Index, IndexCorrupt, set_aside
from gateway.storage.naming import segment_path
from gateway.storage.quarantine import Quarantine, audit_journal
from gateway.storage.record import Segment
from gateway.storage.recovery import RecoveryReport, reconcile, salvage
from gateway.storage.retention import Eviction, HeldRange, RetentionPolicy, enforce, free_bytes
from gateway.storage.sealing import SealingPass
from gateway.telemetry.events import EventBus
from gateway.telemetry.state import StorageUsage

__all__ = ["INDEX_NAME", "LOCK_NAME", "MARKER_NAME", "Storage", "StorageError"]

log = logging.getLogger(__name__)

INDEX_NAME = "index.sqlite3"
LOCK_NAME = ".lock"
MARKER_NAME = ".camera-gateway-storage"
RETENTION_INTERVAL = 1.0
JOURNAL_EXPIRY_INTERVAL = 3600.0
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
        self._last_held: list[HeldRange] | None = None
        self._next_expiry = 0.0
        self._audit = audit

        self._events = events
        self.policy = policy
        self.index = Index(root / INDEX_NAME)
        self._journal = audit_journal(audit) if audit is not None else None
        self.quarantine = Quarantine(root, self.index, self._journal)
        self._index_id: tuple[int, int] | None = None
        """(device, inode) of the index file we opened: a deleted or replaced one is noticed."""
        self._rebuild_due = False
        self.evictions: Counter[str] = Counter()
        self._writing: dict[str, tuple[int, int]] = {}
        """Per camera: (bytes written so far, expected size) of the segment being written."""
        self._open_parts: dict[str, Path] = {}
        """Per camera: the ``.part`` file being written (salvaged if its writer dies)."""
        self.recorded_cameras = 1
        """How many cameras share the quota (sets each one's largest segment)."""
        self._lock = threading.Lock()
        self._pending_lock = threading.Lock()
        self._unindexed: list[Segment] = []
        self._unsalvaged: list[Path] = []
        self._wake = threading.Event()
        self._jobs: deque[Callable[[], None]] = deque()
        """Work handed over by the camera supervision loop (indexing, salvage), which must never
        wait on the disk itself."""
        self._busy_since: float | None = None
        self._last_error_log = 0.0
        self._stop = threading.Event()
        self._lock_fd: int | None = None
        self._thread: threading.Thread | None = None
        self._error: str | None = None
        self._ready = False
        self._usage = StorageUsage(0, policy.quota, None, 0, None, {}, None)

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
            self._replace_index(f"damaged ({exc.reason})")
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
        self._index_id = _file_id(self.index.path)
        log.info("storage %s ready: %s", self.root, report.summary())
        self._refresh()
        self._wake.set()  # retention runs at once
        return report

    def _replace_index(self, why: str) -> None:
        """Set a damaged or vanished index aside and start a new one, rebuilt from the files on
        the storage thread while recording goes on (retention waits for the rebuild)."""
        path = self.index.path
        self.index.close()
        aside: Path | None = None
        if path.exists():
            try:
                aside = set_aside(path)
            except OSError as exc:
                log.error("index %s is %s and cannot be set aside: %s", path, why, exc)
        self.index = Index(path)
        self.quarantine.index = self.index
        self._rebuild_due = True
        log.error(
            "index %s is %s%s; rebuilding it from the segment files while recording goes on",
            path,
            why,
            f" (kept as {aside.name})" if aside is not None else "",
        )
        if self._events is not None:
            self._events.emit("storage_error", reason=f"index {why}; rebuilding it")

    def _rebuild(self) -> None:
        started = time.monotonic()
        report = reconcile(self.root, self.index, quarantine=self.quarantine)
        self._rebuild_due = False
        self._index_id = _file_id(self.index.path)
        log.info(
            "index rebuilt from the files in %.1f s: %s",
            time.monotonic() - started,
            report.summary(),
        )

    def _check_index(self) -> None:
        """An index deleted or replaced under the running daemon is noticed and rebuilt."""
        if self._rebuild_due or self._index_id is None:
            return
        current = _file_id(self.index.path)
        if current != self._index_id:
            self._replace_index("gone (deleted or replaced while running)")

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
        if self._unindexed or self._unsalvaged:
            log.warning(
                "%d segment(s) not indexed yet; they will be at next start",
                len(self._unindexed) + len(self._unsalvaged),
            )
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
        usage = self._usage
        if usage.free is not None and usage.free < self.policy.min_free and not usage.segments:
            raise StorageError("free space below storage.min_free and no recording left to evict")
        path = segment_path(self.root, camera, start)
        while path.exists() or _final_exists(path):
            start += 0.001  # same millisecond (clock stepped back): next free name
            path = segment_path(self.root, camera, start)
        return path

    def refusal(self) -> str | None:
        """Why a new segment would be refused now (None: it would not)."""
        if not self._ready:
            return self._error or f"storage {self.root} is not ready"
        usage = self._usage
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
        with self._lock:
            self._writing[camera] = (0, expected)
            self._open_parts[camera] = path
        self._wake.set()

    def open_part(self, camera: str) -> Path | None:
        """The ``.part`` the camera is writing, if any."""
        with self._lock:
            return self._open_parts.get(camera)

    def writing(self, camera: str, size: int) -> None:
        """Report the size of the segment a camera is writing."""
        with self._lock:
            _, expected = self._writing.get(camera, (0, 0))
            self._writing[camera] = (size, expected)

    def closed(self, camera: str) -> None:
        """The camera's segment is finished (and indexed) or abandoned."""
        with self._lock:
            self._writing.pop(camera, None)
            self._open_parts.pop(camera, None)

    def _writing_bytes(self) -> int:
        with self._lock:
            return sum(max(size, expected) for size, expected in self._writing.values())

    def finished(self, segment: Segment) -> None:
        """Index a segment that was closed normally (retried later if the index fails now)."""
        with self._lock:
            self._unindexed.append(segment)
        self._flush_pending()
        self._wake.set()

    def salvage(self, part: Path) -> None:
        """Keep what an interrupted ``.part`` file holds, after a write error (now or later)."""
        with self._lock:
            self._unsalvaged.append(part)
        self._flush_pending()
        self._wake.set()

    def _flush_pending(self) -> None:
        """Salvage and index what earlier attempts could not, e.g. while the disk was full."""
        with self._pending_lock:
            with self._lock:
                parts, self._unsalvaged = self._unsalvaged, []
            for part in parts:
                try:
                    row = (
                        salvage(self.root, part, quarantine=self.quarantine, quiet=True)
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
                self.index.add_many(rows)
            except Exception as exc:  # the index is on the failing disk: keep the rows
                with self._lock:
                    self._unindexed[:0] = rows
                log.debug("index update postponed (%s): %d segment(s) waiting", exc, len(rows))

    def request_retention(self) -> None:
        self._wake.set()

    def submit(self, job: Callable[[], None]) -> None:
        """Run ``job`` on the storage thread, soon; for callers that must not block on I/O."""
        with self._lock:
            self._jobs.append(job)
        self._wake.set()

    def stuck_for(self) -> float:
        """Seconds the storage thread has been inside one piece of work (0 when idle)."""
        since = self._busy_since
        return 0.0 if since is None else time.monotonic() - since

    def _run_jobs(self) -> None:
        while True:
            with self._lock:
                if not self._jobs:
                    return
                job = self._jobs.popleft()
            try:
                job()
            except Exception:  # one bad file or bug must not stop the storage thread
                log.exception("storage: a deferred task failed")

    # -- retention and usage ---------------------------------------------------------------

    @property
    def usage(self) -> StorageUsage:
        """The latest totals; while the storage thread is stuck on the disk, say so."""
        usage = self._usage
        stuck = self.stuck_for()
        if stuck > STUCK_AFTER:
            usage = dataclasses.replace(usage, error=f"storage not answering for {stuck:.0f} s")
        return usage

    def enforce_now(self) -> list[Eviction]:
        with self._lock:
            writing = {c: max(size, expected) for c, (size, expected) in self._writing.items()}
        evicted = enforce(self.index, self.root, self.policy, writing=writing, held=self._held())
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
                self._run_jobs()
                self._turn()
            finally:
                self._busy_since = None
        self._run_jobs()

    def _turn(self) -> None:
        """Once a second, and when woken: check the root, index what waits, enforce retention."""
        if not self._ready:
            self.open()
            return
        try:
            self.check()
            self._check_index()
            if self._rebuild_due:
                self._rebuild()
            self._flush_pending()
            if self._sealing is not None:
                self._sealing.run(self.index)
            self.enforce_now()
            self._expire_journals()
            if self._error is not None:
                log.info("storage %s is usable again", self.root)
                if self._events is not None:
                    self._events.emit("storage_recovered")
            self._error = None
        except IndexCorrupt as exc:
            self._replace_index(f"damaged ({exc.reason})")
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

    def _expire_journals(self) -> None:
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
            if self.sealer is not None:
                self.sealer.expire()
        except JournalError as exc:
            log.error("journal retention: %s", exc.reason)

    # -- holds -----------------------------------------------------------------------------

    def _held(self) -> list[HeldRange]:
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

    def _refresh(self) -> None:
        try:
            count, total, oldest = self.index.totals()
        except Exception:
            count, total, oldest = self._usage.segments, self._usage.used, self._usage.oldest
        try:
            free: int | None = free_bytes(self.root)
        except OSError:
            free = None
        writing = self._writing_bytes()
        self._usage = StorageUsage(
            used=total + writing,
            quota=self.policy.quota,
            free=free,
            segments=count,
            oldest=oldest,
            evictions=dict(self.evictions),
            error=self._error,
            quarantined=self.quarantine.count,
            seal_error=self._sealing.error if self._sealing is not None else None,
        )


def _file_id(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def _final_exists(part: Path) -> bool:
    return part.with_name(part.name.removesuffix(".part")).exists()


def _os_reason(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        if exc.errno == errno.ENOSPC:
            return "disk full"
        if exc.errno == errno.EROFS:
            return "filesystem is read-only"
        return exc.strerror or type(exc).__name__
    return f"{type(exc).__name__}: {exc}"
