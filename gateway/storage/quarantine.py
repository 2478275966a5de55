"""The quarantine: where recording files that cannot be used go, instead of being deleted.

A file of the storage tree that cannot be read, repaired or placed is moved to
``<root>/quarantine/<camera>/<day>/<name>.quarantined`` (``<name>.1.quarantined``... when
that is taken: nothing is ever overwritten), logged, counted, journalled and recorded in the
index. A file in the quarantine holds images all the same, so retention bounds it like a
recording: quarantined files count in the quota, are evicted first under pressure, and always
once older than ``max_age``.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.clock import utc_iso
from gateway.host.libc import libc
from gateway.integrity.audit import AuditLog
from gateway.storage.index import Index, QuarantinedFile
from gateway.storage.naming import (
    QUARANTINE_DIR,
    is_camera_dir,
    is_day_dir,
    open_dir,
    open_root,
    parse_segment_path,
    quarantine_name,
)

__all__ = ["Journal", "Quarantine", "audit_journal", "rename_noreplace"]

log = logging.getLogger(__name__)

Journal = Callable[[dict[str, Any]], None]
"""Takes one entry (with an ``event`` key) for the journal; may raise, which is logged."""

_MAX_ATTEMPTS = 1000
"""Names tried (``.quarantined``, ``.1.quarantined``...) before giving up on a folder full of
namesakes."""
_RENAME_NOREPLACE = 1


def audit_journal(audit: AuditLog) -> Journal:
    """A journal writing entries to the audit journal."""

    def write(entry: dict[str, Any]) -> None:
        fields = dict(entry)
        audit.append(str(fields.pop("event")), **fields)

    return write


class Quarantine:
    """Moves unusable files of one storage root aside; shared by recovery and the daemon.

    ``index``: where moved files are recorded (None: they are recorded by the next
    reconciliation, which indexes whatever it finds in the quarantine). ``journal``: told of
    each move. ``count`` is the number of files moved since this object was made, for a metric.
    """

    def __init__(self, root: Path, index: Index | None, journal: Journal | None = None) -> None:
        self.root = root
        self.index = index
        self.journal = journal
        self.count = 0
        self._lock = threading.Lock()

    def move(self, path: Path, reason: str) -> Path | None:
        """Move ``path`` (inside the root) to the quarantine; its new path, or None if it was
        gone or is not a file of ours. ``OSError`` from a failing disk propagates, the file
        then staying where it was."""
        try:
            relative = path.relative_to(self.root)
        except ValueError:
            log.error("not moving %s to the quarantine: it is outside storage %s", path, self.root)
            return None
        name = parse_segment_path(path)
        if name is None or len(relative.parts) < 2:
            log.error("not moving %s to the quarantine: not a recording's name", relative)
            return None
        camera, day = _place(relative, name.camera, name.day)
        with self._lock:
            moved = self._move(relative, (QUARANTINE_DIR, camera, day))
            if moved is None:
                return None
            self.count += 1
        target, size = moved
        log.warning("moved %s to %s: %s", relative, target, reason)
        item = QuarantinedFile(str(target), name.camera, name.start, size, reason, time.time())
        self._record(item, str(relative))
        return self.root / target

    def _move(self, relative: Path, folder: tuple[str, ...]) -> tuple[Path, int] | None:
        root_fd = open_root(self.root)
        try:
            source_fd = open_dir(root_fd, relative.parts[:-1])
            try:
                target_fd = open_dir(root_fd, folder, create=True)
                try:
                    return self._rename(source_fd, relative, target_fd, folder)
                finally:
                    os.close(target_fd)
            finally:
                os.close(source_fd)
        except FileNotFoundError:
            log.info("%s is gone: nothing to move to the quarantine", relative)
            return None
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            # A folder on the way was replaced by a link (or a file): move nothing through it.
            log.error("cannot move %s to the quarantine: %s is not a plain folder", relative, exc)
            return None
        finally:
            os.close(root_fd)

    def _rename(
        self, source_fd: int, relative: Path, target_fd: int, folder: tuple[str, ...]
    ) -> tuple[Path, int] | None:
        info = os.stat(relative.name, dir_fd=source_fd, follow_symlinks=False)
        for attempt in range(_MAX_ATTEMPTS):
            candidate = quarantine_name(relative.name, attempt)
            try:
                rename_noreplace(source_fd, relative.name, target_fd, candidate)
            except FileExistsError:
                continue
            os.fsync(target_fd)
            os.fsync(source_fd)
            return Path(*folder, candidate), info.st_size
        raise OSError(errno.EEXIST, f"{_MAX_ATTEMPTS} namesakes already in the quarantine")

    def _record(self, item: QuarantinedFile, original: str) -> None:
        if self.index is not None:
            try:
                self.index.add_quarantined(item)
            except Exception as exc:  # the index is on the same disk; reconciled at next start
                log.warning("quarantined %s not indexed yet (%s)", item.path, exc)
        if self.journal is not None:
            entry = {
                "event": "storage_quarantined",
                "path": original,
                "quarantine": item.path,
                "camera": item.camera,
                "start": utc_iso(item.start),
                "bytes": item.bytes,
                "reason": item.reason,
            }
            try:
                self.journal(entry)
            except Exception as exc:
                log.error("quarantine of %s not journalled: %s", original, exc)


def _place(relative: Path, camera: str, day: str) -> tuple[str, str]:
    """Camera and day folders in the quarantine: those the file was found in, when they are
    proper names, else those its name says."""
    parts = relative.parts
    if len(parts) == 3 and is_camera_dir(parts[0]) and is_day_dir(parts[1]):
        return parts[0], parts[1]
    return camera, day or datetime.now(UTC).strftime("%Y-%m-%d")


def rename_noreplace(source_fd: int, source: str, target_fd: int, target: str) -> None:
    """Rename ``source`` (in folder ``source_fd``) to ``target`` (in ``target_fd``), raising
    ``FileExistsError`` rather than replacing a file already there.

    ``renameat2(RENAME_NOREPLACE)`` where the kernel and filesystem have it (Linux 3.15+,
    ext4, XFS, Btrfs, tmpfs); otherwise a hard link then an unlink, which is as safe but leaves
    both names if the power goes in between (the next reconciliation then finds the copy).
    """
    c = libc()
    if c is not None:
        result = c.renameat2(
            ctypes.c_int(source_fd),
            os.fsencode(source),
            ctypes.c_int(target_fd),
            os.fsencode(target),
            ctypes.c_uint(_RENAME_NOREPLACE),
        )
        if result == 0:
            return
        code = ctypes.get_errno()
        if code not in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
            raise OSError(code, os.strerror(code), target)
    os.link(source, target, src_dir_fd=source_fd, dst_dir_fd=target_fd, follow_symlinks=False)
    os.unlink(source, dir_fd=source_fd)
