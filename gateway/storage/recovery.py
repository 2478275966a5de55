"""Bringing the files and the index back into agreement: after a crash, and on request.

Every file of the storage tree is untrusted input. The walk never follows a symbolic link,
leaves alone whatever does not carry one of our names, and skips ``quarantine/`` and
``audit/``. Then, for each file:

- a ``.part`` left by a crash is cut to its last good fragment and renamed. When fragments
  before that one are damaged, a copy holding only the good fragments is written beside it,
  the original goes to the quarantine and the copy takes the finished name. A ``.part`` with
  no media at all (nothing past its movie header) is removed, with a log line;
- a finished segment missing from the index is read and indexed;
- a file that cannot be used (unreadable, no complete fragment, in the wrong folder) is moved
  to the quarantine (:mod:`gateway.storage.quarantine`), never deleted.

This module walks the tree and keeps the index in step; the repair of each file is
:mod:`gateway.storage.salvage`. :func:`reconcile` also forgets rows whose files are gone and
indexes what sits in the quarantine; :func:`rebuild_index` builds a whole new index from the
files into a new database and swaps it in, so that a failure leaves the previous one.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from gateway.storage.index import Index, QuarantinedFile
from gateway.storage.naming import (
    PART_SUFFIX,
    QUARANTINE_DIR,
    RESERVED_DIRS,
    BadPathError,
    check_quarantine_path,
    has_segment_shape,
    is_camera_dir,
    is_day_dir,
    parse_rebuild_temp,
    parse_segment_path,
    quarantined_original,
)
from gateway.storage.quarantine import Journal, Quarantine
from gateway.storage.record import Segment
from gateway.storage.salvage import (
    RecoveryReport,
    describe,
    finish_rebuild,
    is_placed,
    leave_foreign,
    read_finished,
    salvage,
)

__all__ = [
    "RecoveryReport",
    "describe",
    "rebuild_index",
    "reconcile",
    "salvage",
    "segment_files",
]

log = logging.getLogger(__name__)

_BATCH = 1000
"""Rows indexed per transaction while reconciling: a month of 64 cameras is 2.7 million files,
which must not all wait in memory."""
# -- the walk --------------------------------------------------------------------------------


def segment_files(root: Path, report: RecoveryReport | None = None) -> Iterator[Path]:
    """Every file with a segment's name (finished or not) in ``<root>/<camera>/<day>/``.

    Symbolic links are never followed (logged as errors, counted in ``report``), foreign names
    are skipped (counted), and the ``quarantine`` and ``audit`` folders are not entered.
    """
    for path, _ in _walk(root, report if report is not None else RecoveryReport()):
        if parse_segment_path(path) is not None:
            yield path


def _walk(root: Path, report: RecoveryReport) -> Iterator[tuple[Path, str]]:
    """Segment files and leftover rebuild copies, folder by folder: (path, relative path)."""
    for camera in _entries(root, report, top=True):
        if not is_camera_dir(camera.name):
            leave_foreign(Path(camera.path), report)
            continue
        for day in _entries(Path(camera.path), report, top=False):
            if not is_day_dir(day.name):
                leave_foreign(Path(day.path), report)
                continue
            for entry in _entries(Path(day.path), report, top=False, files=True):
                name = entry.name
                if has_segment_shape(name) or parse_rebuild_temp(name):
                    yield Path(entry.path), f"{camera.name}/{day.name}/{name}"
                else:
                    leave_foreign(Path(entry.path), report)


def _entries(
    folder: Path, report: RecoveryReport, *, top: bool, files: bool = False
) -> list[os.DirEntry[str]]:
    """Folders (or regular files) of ``folder``, sorted; links are refused, nothing followed."""
    try:
        with os.scandir(folder) as scan_entries:
            entries = sorted(scan_entries, key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        return []
    except PermissionError as exc:
        log.error("cannot read folder %s: %s; its files are left alone", folder, exc.strerror)
        report.foreign += 1
        return []
    kept = []
    for entry in entries:
        if top and (entry.name.startswith(".") or entry.name in RESERVED_DIRS):
            continue  # the lock, the marker, the quarantine and the journal
        if entry.is_symlink():
            log.error("%s is a symbolic link: not following it", entry.path)
            report.symlinks += 1
        elif entry.is_file(follow_symlinks=False) if files else entry.is_dir(follow_symlinks=False):
            kept.append(entry)
        elif not top:
            leave_foreign(Path(entry.path), report)
    return kept


# -- reconcile -------------------------------------------------------------------------------


def reconcile(root: Path, index: Index, *, quarantine: Quarantine | None = None) -> RecoveryReport:
    """Repair interrupted segments, index unindexed files, forget rows of missing files.

    Never raises because of what a file holds: what cannot be used goes to ``quarantine``
    (default: a quarantine recording into ``index``, without a journal). ``OSError`` from a
    failing disk, and ``sqlite3.Error`` from the index, propagate.
    """
    return _reconcile(root, index, quarantine or Quarantine(root, index), {})


def _reconcile(
    root: Path,
    index: Index,
    quarantine: Quarantine,
    previous: Mapping[str, QuarantinedFile],
) -> RecoveryReport:
    report = RecoveryReport()
    known = index.paths()
    on_disk: set[str] = set()
    rows: list[Segment] = []
    for path, relative in _walk(root, report):
        if parse_rebuild_temp(path.name):
            row = finish_rebuild(root, path, report)
        elif path.name.endswith(PART_SUFFIX):
            row = salvage(root, path, quarantine=quarantine, report=report)
        elif relative in known and is_placed(relative):
            on_disk.add(relative)
            continue
        else:
            row = read_finished(root, path, report, quarantine)
            if row is not None:
                report.added += 1  # repaired .part files are counted in report.repaired
        if row is not None:
            on_disk.add(row.path)
            rows.append(row)
            if len(rows) >= _BATCH:
                index.add_many(rows)
                rows = []
    index.add_many(rows)
    for missing in known - on_disk:
        index.remove(missing)
        report.forgotten += 1
    _reconcile_quarantine(root, index, report, previous)
    return report


# -- the quarantine folder -------------------------------------------------------------------


def _reconcile_quarantine(
    root: Path, index: Index, report: RecoveryReport, previous: Mapping[str, QuarantinedFile]
) -> None:
    """Index what sits in the quarantine (moved by a run that could not index it, or before
    the index was rebuilt) and forget rows whose files are gone."""
    known = index.quarantine_paths()
    seen: set[str] = set()
    for path in _quarantine_files(root, report):
        relative = str(path.relative_to(root))
        seen.add(relative)
        if relative in known:
            continue
        item = previous.get(relative)
        if item is None:
            info = path.lstat()
            name = parse_segment_path(path.with_name(quarantined_original(path.name) or ""))
            item = QuarantinedFile(
                path=relative,
                camera=name.camera if name else "",
                start=name.start if name else info.st_mtime,
                bytes=info.st_size,
                reason="found in the quarantine",
                moved_at=time.time(),
            )
        index.add_quarantined(item)
    for gone in known - seen:
        index.remove_quarantined(gone)


def _quarantine_files(root: Path, report: RecoveryReport) -> Iterator[Path]:
    folder = root / QUARANTINE_DIR
    if folder.is_symlink():
        log.error("%s is a symbolic link: not following it", folder)
        report.symlinks += 1
        return
    for camera in _entries(folder, report, top=False):
        for day in _entries(Path(camera.path), report, top=False):
            for entry in _entries(Path(day.path), report, top=False, files=True):
                path = Path(entry.path)
                try:
                    check_quarantine_path(str(path.relative_to(root)))
                except BadPathError:
                    leave_foreign(path, report)
                    continue
                yield path


# -- rebuilding the index --------------------------------------------------------------------


def rebuild_index(
    root: Path, index_path: Path, *, journal: Journal | None = None
) -> RecoveryReport:
    """Build a new index of ``root`` from its files alone, then swap it in for ``index_path``.

    The new database is written beside the old one (``<name>.rebuild``), folded into a single
    file, synced, and renamed over ``index_path`` (its old ``-wal``/``-shm`` are removed
    first, so they never meet the new database). If anything fails, the old index is left as
    it was. The caller holds the storage lock and has closed ``index_path``; ``journal`` is
    told of files moved to the quarantine. Reasons and times of files already in the
    quarantine are carried over from the old index when it can still be read.
    """
    temp = index_path.with_name(index_path.name + ".rebuild")
    _remove_database(temp)  # a rebuild that did not finish
    previous = _previous_quarantine(index_path)
    new = Index(temp)
    try:
        report = _reconcile(root, new, Quarantine(root, new, journal), previous)
        new.finish()
        fd = os.open(temp, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        for suffix in ("-wal", "-shm"):
            Path(f"{index_path}{suffix}").unlink(missing_ok=True)
        os.replace(temp, index_path)
        _fsync_folder(index_path.parent)
    except BaseException:
        new.close()
        _remove_database(temp)
        raise
    return report


def _previous_quarantine(index_path: Path) -> dict[str, QuarantinedFile]:
    if not index_path.exists():
        return {}
    old = Index(index_path, readonly=True)
    try:
        return {q.path: q for q in old.quarantined()}
    except sqlite3.Error as exc:
        log.info("previous index unreadable (%s): quarantine reasons start afresh", exc)
        return {}
    finally:
        old.close()


def _remove_database(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _fsync_folder(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
