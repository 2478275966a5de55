"""The storage area of one box: its root folder, lock, index, retention thread and health.

The daemon holds an exclusive lock on the root so that two processes never write one ring
buffer. A marker file tells the storage we initialised from an empty mount point left behind
when a disk goes away: recording then stops with a clear error instead of filling the system disk.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import sqlite3
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from gateway.events import EventBus
from gateway.recorder.segment import SegmentInfo
from gateway.storage.index import Index, IndexedSegment
from gateway.storage.naming import segment_path
from gateway.storage.recovery import RecoveryReport, reconcile, salvage
from gateway.storage.retention import Eviction, RetentionPolicy, enforce, free_bytes

__all__ = ["INDEX_NAME", "LOCK_NAME", "MARKER_NAME", "Storage", "StorageError", "StorageUsage"]

log = logging.getLogger(__name__)

INDEX_NAME = "index.sqlite3"
LOCK_NAME = ".lock"
MARKER_NAME = ".camera-gateway-storage"
RETENTION_INTERVAL = 1.0


class StorageError(Exception):
    """The storage cannot take a new segment now; ``reason`` says why in a few words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class StorageUsage:
    used: int
    """Finished segments plus segments being written."""
    quota: int
    free: int | None
    segments: int
    oldest: float | None
    evictions: dict[str, int]
    error: str | None


class Storage:
    """Opened once by the daemon; shared by every camera's recorder."""

    def __init__(
        self, root: Path, policy: RetentionPolicy, *, events: EventBus | None = None
    ) -> None:
        self.root = root
        self._events = events
        self.policy = policy
        self.index = Index(root / INDEX_NAME)
        self.evictions: Counter[str] = Counter()
        self._writing: dict[str, tuple[int, int]] = {}
        """Per camera: (bytes written so far, expected size) of the segment being written."""
        self._lock = threading.Lock()
        self._pending_lock = threading.Lock()
        self._unindexed: list[IndexedSegment] = []
        self._unsalvaged: list[Path] = []
        self._wake = threading.Event()
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
            report = reconcile(self.root, self.index)
        except (OSError, sqlite3.Error) as exc:
            reason = f"cannot use storage {self.root}: {_os_reason(exc)}"
            if reason != self._error:
                log.error("%s; recording starts once it can", reason)
            self._error = reason
            self._refresh()
            return None
        self._ready = True
        self._error = None
        log.info("storage %s ready: %s", self.root, report.summary())
        self._refresh()
        self._wake.set()  # retention runs at once
        return report

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

    def opened(self, camera: str, expected: int) -> None:
        """A camera started a segment expected to grow to ``expected`` bytes.

        Retention makes room for the expected size at once, so that the total stays within the
        quota while the segment grows, rather than catching up after it was written.
        """
        with self._lock:
            self._writing[camera] = (0, expected)
        self._wake.set()

    def writing(self, camera: str, size: int) -> None:
        """Report the size of the segment a camera is writing."""
        with self._lock:
            _, expected = self._writing.get(camera, (0, 0))
            self._writing[camera] = (size, expected)

    def closed(self, camera: str) -> None:
        """The camera's segment is finished (and indexed) or abandoned."""
        with self._lock:
            self._writing.pop(camera, None)

    def _writing_bytes(self) -> int:
        with self._lock:
            return sum(max(size, expected) for size, expected in self._writing.values())

    def finished(self, info: SegmentInfo) -> None:
        """Index a segment that was closed normally (retried later if the index fails now)."""
        with self._lock:
            self._unindexed.append(self._row(info))
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
                    row = salvage(self.root, part, quiet=True) if part.exists() else None
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

    # -- retention and usage ---------------------------------------------------------------

    @property
    def usage(self) -> StorageUsage:
        return self._usage

    def enforce_now(self) -> list[Eviction]:
        writing = self._writing_bytes()
        evicted = enforce(self.index, self.root, self.policy, writing_bytes=writing)
        for eviction in evicted:
            self.evictions[eviction.reason] += 1
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
        last_error_log = 0.0
        while not self._stop.is_set():
            self._wake.wait(RETENTION_INTERVAL)
            self._wake.clear()
            if self._stop.is_set():
                break
            if not self._ready:
                self.open()
                continue
            try:
                self.check()
                self._flush_pending()
                self.enforce_now()
                if self._error is not None:
                    log.info("storage %s is usable again", self.root)
                    if self._events is not None:
                        self._events.emit("storage_recovered")
                self._error = None
            except (StorageError, OSError, Exception) as exc:
                reason = exc.reason if isinstance(exc, StorageError) else _os_reason(exc)
                now = time.monotonic()
                if reason != self._error or now - last_error_log > 60:
                    log.error("storage: %s", reason)
                    last_error_log = now
                if reason != self._error and self._events is not None:
                    self._events.emit("storage_error", reason=reason)
                self._error = reason
                self._refresh()

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
        )

    def _row(self, info: SegmentInfo) -> IndexedSegment:
        return IndexedSegment(
            path=str(info.path.relative_to(self.root)),
            camera=info.camera,
            start=info.start,
            end=info.end,
            bytes=info.bytes,
            frames=info.frames,
            codec=info.codec,
            width=info.width,
            height=info.height,
            has_audio=info.has_audio,
        )


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
