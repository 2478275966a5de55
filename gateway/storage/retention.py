"""Retention: evict recordings until every limit holds, never letting one camera crowd out another.

The rule:

- ``max_age`` applies to everything, segments and quarantined files alike, by start time:
  nothing that started longer ago is kept (the legal cap is one month).
- While the quota is exceeded (bytes of segments, of quarantined files and being written) or
  free space is below ``min_free``:

  1. quarantined files go first, oldest first;
  2. then the oldest segment among the cameras whose usage (indexed bytes plus bytes being
     written) is above their fair share. The share is the room for recordings divided by the
     number of cameras holding data (finished or being written); the room is the quota, or,
     when the filesystem is the tighter limit, the bytes held plus the free space above
     ``min_free``;
  3. only when no camera above its share has a finished segment left, the oldest segment
     overall.

  So a camera that floods the disk never takes another camera below its fair share.

Each eviction names its reason (``quota``, ``max_age``, ``min_free``) and its camera. Only
paths of the naming scheme inside the root are deleted, through folders opened without
following links: an index row naming anything else is dropped from the index with an error,
and its path is not touched.
"""

from __future__ import annotations

import errno
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from gateway.storage.index import Index, QuarantinedFile
from gateway.storage.naming import (
    BadPathError,
    check_quarantine_path,
    check_segment_path,
    open_dir,
    open_root,
)
from gateway.storage.record import Segment
from gateway.units import format_duration, format_size

__all__ = ["Eviction", "HeldRange", "RetentionPolicy", "enforce", "free_bytes"]

HeldRange = tuple[str, float, float]
"""(camera, start, end) under a legal hold (see :mod:`gateway.storage.holds`)."""

log = logging.getLogger(__name__)

_FIRST_BATCH = 2
_BATCH = 64
"""Rows fetched at a time, per camera or overall: 2 at first, as most ticks evict one segment
or none, then 64 for a tick that has a backlog to clear."""
_NOTHING: Mapping[str, int] = MappingProxyType({})
_REFUSED = (errno.ELOOP, errno.ENOTDIR, errno.EISDIR, errno.EPERM, errno.EACCES)
"""Errors that are about one path (a link swapped in, a folder or a protected file where a
segment should be): its row is dropped and retention goes on, rather than stopping on it at
every tick. Anything else (a read-only or failing disk) is the storage's problem and raised."""


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    quota: int
    max_age: float
    min_free: int


@dataclass(frozen=True, slots=True)
class Eviction:
    segment: Segment | QuarantinedFile
    """What was deleted: a segment, or a file of the quarantine."""
    reason: str
    """``quota``, ``max_age`` or ``min_free``."""

    @property
    def camera(self) -> str:
        """The camera it was recorded for ('' for a quarantined file of unknown origin)."""
        return self.segment.camera

    @property
    def quarantined(self) -> bool:
        return isinstance(self.segment, QuarantinedFile)


def free_bytes(path: Path) -> int:
    """Bytes available to unprivileged writers on the filesystem holding ``path``."""
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


def enforce(
    index: Index,
    root: Path,
    policy: RetentionPolicy,
    *,
    writing: Mapping[str, int] = _NOTHING,
    writing_bytes: int = 0,
    now: float | None = None,
    on_evict: Callable[[Eviction], None] | None = None,
    held: Sequence[HeldRange] = (),
) -> list[Eviction]:
    """Delete recordings until every limit holds, or nothing is left to delete.

    ``writing``: bytes being written (or expected) per camera. ``writing_bytes``: bytes being
    written that belong to no camera in particular (counted in the quota only).

    ``held``: (camera, start, end) ranges under a legal hold: the segments they overlap are
    never evicted (they still count in the quota; holds have a budget of their own).

    One tick with nothing to evict costs two indexed queries (the running totals and the
    oldest start) and one ``statvfs``; no table is scanned.
    """
    now = time.time() if now is None else now
    run = _Run(
        index, root, policy, writing=writing, writing_bytes=writing_bytes, now=now, held=held
    )
    try:
        return run.enforce(on_evict)
    finally:
        run.close()


class _Run:
    """One pass of retention, with its running figures."""

    def __init__(
        self,
        index: Index,
        root: Path,
        policy: RetentionPolicy,
        *,
        writing: Mapping[str, int],
        writing_bytes: int,
        now: float,
        held: Sequence[HeldRange] = (),
    ) -> None:
        self.held = tuple(held)
        self.index = index
        self.root = root
        self.policy = policy
        self.now = now
        self.writing = {camera: size for camera, size in writing.items() if size > 0}
        _, total, self.oldest_start = index.totals()
        self.used = total + sum(self.writing.values()) + writing_bytes
        self.cameras = index.camera_bytes()
        self.quarantined, _ = index.quarantine_totals()
        self.free = free_bytes(root)
        self.evicted: list[Eviction] = []
        self._root_fd = open_root(root)
        self._heads: dict[str | None, deque[Segment]] = {}
        self._fetched: set[str | None] = set()
        self._gone: set[str] = set()
        self._quarantine: deque[QuarantinedFile] = deque()

    def close(self) -> None:
        os.close(self._root_fd)

    def enforce(self, on_evict: Callable[[Eviction], None] | None) -> list[Eviction]:
        cutoff = self.now - self.policy.max_age
        while self.quarantined > 0 and (item := self._next_quarantined()) is not None:
            if item.start >= cutoff:
                break
            self._evict(item, "max_age", on_evict)
        while self.oldest_start is not None and self.oldest_start < cutoff:
            segment = self._head(None)
            if segment is None or segment.start >= cutoff:
                break
            self._evict(segment, "max_age", on_evict)
        while (reason := self._pressure()) is not None:
            victim: Segment | QuarantinedFile | None = None
            if self.quarantined > 0:
                victim = self._next_quarantined()
            victim = victim or self._pick()
            if victim is None:
                break
            self._evict(victim, reason, on_evict)
        return self.evicted

    def _pressure(self) -> str | None:
        if self.used > self.policy.quota:
            return "quota"
        if self.free < self.policy.min_free:
            return "min_free"
        return None

    # -- choosing --------------------------------------------------------------------------

    def _pick(self) -> Segment | None:
        """The oldest segment of the cameras above their fair share, else the oldest one."""
        usage = {c: self.cameras.get(c, 0) + self.writing.get(c, 0) for c in self._holders()}
        if usage:
            room = max(0, min(self.policy.quota, self.used + self.free - self.policy.min_free))
            share = room / len(usage)
            heads = [
                head
                for camera, used in usage.items()
                if used > share and self.cameras.get(camera, 0) > 0
                if (head := self._head(camera)) is not None
            ]
            if heads:
                return min(heads, key=lambda s: (s.start, s.path))
        return self._head(None)

    def _holders(self) -> set[str]:
        return {c for c, size in self.cameras.items() if size > 0} | set(self.writing)

    def _head(self, camera: str | None) -> Segment | None:
        """The oldest segment not yet evicted, of ``camera`` or overall."""
        heads = self._heads.setdefault(camera, deque())
        while True:
            while heads and heads[0].path in self._gone:
                heads.popleft()
            if heads:
                return heads[0]
            # A few rows first: most ticks evict one segment or none, of one of many cameras.
            limit = _BATCH if camera in self._fetched else _FIRST_BATCH
            self._fetched.add(camera)
            fetched = [
                s
                for s in self.index.oldest(limit, camera, exclude=self.held)
                if s.path not in self._gone
            ]
            if not fetched:
                return None
            heads.extend(fetched)

    def _next_quarantined(self) -> QuarantinedFile | None:
        while self._quarantine and self._quarantine[0].path in self._gone:
            self._quarantine.popleft()
        if not self._quarantine:
            fetched = self.index.quarantined(_BATCH)
            self._quarantine.extend(q for q in fetched if q.path not in self._gone)
        return self._quarantine[0] if self._quarantine else None

    # -- deleting --------------------------------------------------------------------------

    def _evict(
        self,
        victim: Segment | QuarantinedFile,
        reason: str,
        on_evict: Callable[[Eviction], None] | None,
    ) -> None:
        self._gone.add(victim.path)
        deleted = self._delete(victim)
        self._forget(victim)
        if not deleted:
            return
        self.free = free_bytes(self.root)
        eviction = Eviction(victim, reason)
        self.evicted.append(eviction)
        log.info(
            "evicted %s (camera %s, %s, %s, %s old): %s",
            victim.path,
            victim.camera or "unknown",
            format_size(victim.bytes),
            reason,
            format_duration(self.now - victim.start),
            self._explain(reason),
        )
        if on_evict is not None:
            on_evict(eviction)

    def _forget(self, victim: Segment | QuarantinedFile) -> None:
        self.used -= victim.bytes
        if isinstance(victim, QuarantinedFile):
            self.index.remove_quarantined(victim.path)
            self.quarantined -= 1
            return
        self.index.remove(victim.path)
        left = self.cameras.get(victim.camera, 0) - victim.bytes
        if left > 0:
            self.cameras[victim.camera] = left
        else:
            self.cameras.pop(victim.camera, None)
        head = self._head(None)
        self.oldest_start = head.start if head is not None else None

    def _delete(self, victim: Segment | QuarantinedFile) -> bool:
        """Unlink the file if its path is one of ours; False (the row is then only dropped)
        when it is not, or when a link was swapped in on the way."""
        try:
            if isinstance(victim, QuarantinedFile):
                check_quarantine_path(victim.path)
            elif check_segment_path(victim.path).camera != victim.camera:
                raise BadPathError(f"{victim.path!r} is not a file of camera {victim.camera!r}")
        except BadPathError as exc:
            log.error("index row dropped, its path not touched: %s", exc)
            return False
        parts = victim.path.split("/")
        try:
            _unlink(self._root_fd, parts)
        except OSError as exc:
            if exc.errno not in _REFUSED:
                raise
            log.error(
                "index row %s dropped, its path not touched: not a plain file in plain "
                "folders (%s)",
                victim.path,
                exc.strerror,
            )
            return False
        return True

    def _explain(self, reason: str) -> str:
        policy = self.policy
        if reason == "quota":
            return f"{format_size(self.used)} used of {format_size(policy.quota)} quota"
        if reason == "min_free":
            return f"{format_size(self.free)} free, {format_size(policy.min_free)} required"
        return f"older than max_age {format_duration(policy.max_age)}"


def _unlink(root_fd: int, parts: list[str]) -> None:
    """Unlink ``<root>/<parts...>`` through folders opened with ``O_NOFOLLOW``, then remove
    the folders it leaves empty (day, and in the quarantine the camera too); a file already
    gone is fine."""
    folders: list[int] = []
    try:
        for part in parts[:-1]:
            try:
                folders.append(open_dir(folders[-1] if folders else root_fd, [part]))
            except FileNotFoundError:
                return
        with suppress(FileNotFoundError):
            os.unlink(parts[-1], dir_fd=folders[-1])
        for depth in range(len(parts) - 2, 0, -1):
            try:
                os.rmdir(parts[depth], dir_fd=folders[depth - 1])
            except OSError:
                break  # only succeeds once the folder is empty
    finally:
        for fd in folders:
            os.close(fd)
