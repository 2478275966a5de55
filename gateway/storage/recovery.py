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

:func:`reconcile` also forgets rows whose files are gone and indexes what sits in the
quarantine; :func:`rebuild_index` builds a whole new index from the files into a new database
and swaps it in, so that a failure leaves the previous one.
"""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from gateway.media.fmp4 import Fmp4Error, SegmentFacts, repair, scan
from gateway.storage.index import Index, QuarantinedFile
from gateway.storage.naming import (
    PART_SUFFIX,
    QUARANTINE_DIR,
    RESERVED_DIRS,
    BadPathError,
    SegmentName,
    check_quarantine_path,
    check_segment_path,
    final_path,
    has_segment_shape,
    is_camera_dir,
    is_day_dir,
    open_dir,
    open_root,
    parse_rebuild_temp,
    parse_segment_path,
    quarantined_original,
    rebuild_temp_path,
    segment_path,
)
from gateway.storage.quarantine import Journal, Quarantine, rename_noreplace
from gateway.storage.record import Segment

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
_NAME_ATTEMPTS = 1000
"""Milliseconds a salvaged segment's name may move forward when its own is taken."""


@dataclass(slots=True)
class RecoveryReport:
    repaired: int = 0
    """``.part`` files cut to their last good fragment and kept (rebuilt ones included)."""
    rebuilt: int = 0
    """Of those, files rebuilt without damaged fragments (their original is quarantined)."""
    discarded: int = 0
    """``.part`` files with no media at all, removed."""
    added: int = 0
    forgotten: int = 0
    quarantined: int = 0
    """Files moved to the quarantine because they cannot be used (the damaged originals of
    rebuilt files are counted in ``rebuilt``; :attr:`Quarantine.count` counts every move)."""
    damaged: int = 0
    """Finished segments with damaged fragments, indexed as they are (flag ``damaged``)."""
    symlinks: int = 0
    """Symbolic links in the tree, refused."""
    foreign: int = 0
    """Files and folders that are not ours, left alone."""
    bytes_cut: int = 0

    @property
    def unreadable(self) -> int:
        """Former name of :attr:`quarantined`."""
        return self.quarantined

    def summary(self) -> str:
        text = (
            f"{self.repaired} interrupted segment(s) repaired ({self.rebuilt} rebuilt), "
            f"{self.discarded} empty one(s) removed, {self.added} file(s) indexed, "
            f"{self.forgotten} missing file(s) forgotten, {self.quarantined} quarantined"
        )
        if self.damaged:
            text += f", {self.damaged} damaged segment(s) kept"
        if self.symlinks:
            text += f", {self.symlinks} symbolic link(s) refused"
        if self.foreign:
            text += f", {self.foreign} foreign file(s) left alone"
        return text


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
            _foreign(Path(camera.path), report)
            continue
        for day in _entries(Path(camera.path), report, top=False):
            if not is_day_dir(day.name):
                _foreign(Path(day.path), report)
                continue
            for entry in _entries(Path(day.path), report, top=False, files=True):
                name = entry.name
                if has_segment_shape(name) or parse_rebuild_temp(name):
                    yield Path(entry.path), f"{camera.name}/{day.name}/{name}"
                else:
                    _foreign(Path(entry.path), report)


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
            _foreign(Path(entry.path), report)
    return kept


def _foreign(path: Path, report: RecoveryReport) -> None:
    log.info("leaving %s alone: not a recording of ours", path)
    report.foreign += 1


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
            row = _finish_rebuild(root, path, report)
        elif path.name.endswith(PART_SUFFIX):
            row = salvage(root, path, quarantine=quarantine, report=report)
        elif relative in known and _placed(relative):
            on_disk.add(relative)
            continue
        else:
            row = _read(root, path, report, quarantine)
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


def _placed(relative: str) -> bool:
    try:
        check_segment_path(relative)
    except BadPathError:
        return False
    return True


def _read(root: Path, path: Path, report: RecoveryReport, quarantine: Quarantine) -> Segment | None:
    """The row of a finished segment, or None once it is quarantined."""
    relative = str(path.relative_to(root))
    try:
        check_segment_path(relative)
    except BadPathError as exc:
        _quarantine(quarantine, path, f"misplaced: {exc}", report)
        return None
    try:
        facts = scan(path)
    except FileNotFoundError:
        return None
    except Fmp4Error as exc:
        _quarantine(quarantine, path, f"unreadable: {exc}", report)
        return None
    except OSError as exc:
        _quarantine(quarantine, path, f"cannot read: {exc.strerror or exc}", report)
        return None
    if facts.fragments == 0:
        _quarantine(quarantine, path, "unreadable: no complete fragment", report)
        return None
    flags = set()
    if facts.damaged or facts.complete_size < facts.size:
        flags.add("damaged")
        report.damaged += 1
        log.warning(
            "segment %s is damaged (%d bytes unreadable); indexed as it is",
            relative,
            facts.damaged_bytes + facts.size - facts.complete_size,
        )
    return describe(root, path, facts, flags=flags)


def _quarantine(quarantine: Quarantine, path: Path, reason: str, report: RecoveryReport) -> None:
    if quarantine.move(path, reason) is not None:
        report.quarantined += 1


def describe(
    root: Path, path: Path, facts: SegmentFacts, *, flags: set[str] | frozenset[str] = frozenset()
) -> Segment | None:
    """The index row of a finished segment file, from its name and its boxes."""
    name = parse_segment_path(path)
    if name is None or name.partial:
        return None
    flags = set(flags)
    if facts.starts_on_keyframe is False:
        flags.add("no_keyframe")
    # A rebuilt file may have lost its first fragments: it starts where its media starts.
    start = name.start + (facts.start_offset if facts.rebuilt else 0.0)
    video = facts.video
    return Segment(
        path=str(path.relative_to(root)),
        camera=name.camera,
        start=start,
        end=start + facts.duration,
        bytes=facts.size,
        frames=facts.frames,
        codec=facts.codec,
        width=video.width if video else 0,
        height=video.height if video else 0,
        has_audio=facts.has_audio,
        flags=frozenset(flags),
    )


# -- interrupted segments --------------------------------------------------------------------


def salvage(
    root: Path,
    part: Path,
    *,
    quarantine: Quarantine | None = None,
    report: RecoveryReport | None = None,
    quiet: bool = False,
) -> Segment | None:
    """Keep what an interrupted ``.part`` file holds; its row, or None if nothing is kept.

    The file is cut at its last good fragment and takes its finished name (the next free
    millisecond if that is taken). Damaged fragments before the last good one: the good ones are
    copied to a new file (synced, then renamed to the finished name), and the original goes
    to ``quarantine``. A file with no media at all is removed (logged at info level, at debug
    level with ``quiet``: a write that failed at once, e.g. on a full disk, leaves such files).
    Anything else that cannot be used is quarantined. Rows get the flag ``recovered`` (and
    ``rebuilt``). ``OSError`` while writing (full or read-only disk) propagates, leaving the
    file as it was for a later attempt.
    """
    report = report if report is not None else RecoveryReport()
    quarantine = quarantine if quarantine is not None else Quarantine(root, None)
    relative = part.relative_to(root)
    name = parse_segment_path(part)
    if name is None or not name.partial:
        _foreign(part, report)
        return None
    if not _placed(str(final_path(relative))):
        _quarantine(
            quarantine, part, f"misplaced: {relative} is not in {name.camera}/{name.day}", report
        )
        return None
    try:
        facts = scan(part)
    except FileNotFoundError:
        return None
    except Fmp4Error as exc:
        if exc.header_only:
            _discard(root, part, str(exc), quiet, report)
        else:
            _quarantine(quarantine, part, f"unreadable: {exc}", report)
        return None
    except OSError as exc:
        _quarantine(quarantine, part, f"cannot read: {exc.strerror or exc}", report)
        return None
    if facts.fragments == 0:
        if facts.size <= facts.header_end:
            _discard(root, part, "no fragment after the movie header", quiet, report)
        else:
            _quarantine(quarantine, part, "unreadable: no complete fragment", report)
        return None
    return _keep(root, part, name, facts, quarantine=quarantine, report=report)


def _keep(
    root: Path,
    part: Path,
    name: SegmentName,
    facts: SegmentFacts,
    *,
    quarantine: Quarantine,
    report: RecoveryReport,
) -> Segment | None:
    size_before = facts.size
    final = _free_name(root, part, name)
    flags = {"recovered"}
    try:
        if facts.damaged == 0:
            facts = repair(part)
            _rename(root, part, final)
        else:
            temp = rebuild_temp_path(final)
            temp.unlink(missing_ok=True)  # our own copy from an attempt that was cut short
            facts = repair(part, rebuild_to=temp)
            if quarantine.move(part, _damage(facts, final)) is None and os.path.lexists(part):
                # Without its original kept aside, the copy would be made again at every
                # start: leave the file as it is, for whoever looks at the logged error.
                temp.unlink(missing_ok=True)
                log.error("%s left as it is: its damaged original cannot be kept aside", part)
                return None
            _rename(root, temp, final)
            flags.add("rebuilt")
            report.rebuilt += 1
    except Fmp4Error as exc:  # it changed under us: keep it aside, as it is
        _quarantine(quarantine, part, f"unreadable: {exc}", report)
        return None
    report.repaired += 1
    report.bytes_cut += max(0, size_before - facts.size)
    log.info(
        "repaired interrupted segment %s: kept %.1f s, %d frames; %s",
        final.relative_to(root),
        facts.duration,
        facts.frames,
        _damage(facts, final) if facts.rebuilt else f"cut {size_before - facts.size} bytes",
    )
    return describe(root, final, facts, flags=flags)


def _damage(facts: SegmentFacts, final: Path) -> str:
    return (
        f"{facts.damaged} damaged stretch(es) of {facts.damaged_bytes} bytes left out "
        f"({facts.trimmed} undecodable frames after them); {facts.fragments} good "
        f"fragment(s) rebuilt into {final.name}"
    )


def _discard(root: Path, part: Path, why: str, quiet: bool, report: RecoveryReport) -> None:
    log.log(
        logging.DEBUG if quiet else logging.INFO,
        "removing interrupted segment %s: no media in it (%s)",
        part.relative_to(root),
        why,
    )
    part.unlink(missing_ok=True)
    report.discarded += 1


def _free_name(root: Path, part: Path, name: SegmentName) -> Path:
    """The finished name of ``part``, or the next free millisecond's if that one is taken:
    a rename never replaces a recording."""
    final = final_path(part)
    for step in range(_NAME_ATTEMPTS):
        if step:
            final = final_path(segment_path(root, name.camera, name.start + step / 1000))
        if not os.path.lexists(final) and not os.path.lexists(rebuild_temp_path(final)):
            return final
    raise OSError(errno.EEXIST, f"no free name for {part.name}")


def _rename(root: Path, source: Path, target: Path) -> None:
    """Rename inside the root, through folders opened without following links, never
    replacing a file; both folders are synced."""
    src = source.relative_to(root).parts
    dst = target.relative_to(root).parts
    root_fd = open_root(root)
    try:
        source_fd = open_dir(root_fd, src[:-1])
        try:
            target_fd = open_dir(root_fd, dst[:-1], create=True)
            try:
                rename_noreplace(source_fd, src[-1], target_fd, dst[-1])
                os.fsync(target_fd)
                if src[:-1] != dst[:-1]:
                    os.fsync(source_fd)
            finally:
                os.close(target_fd)
        finally:
            os.close(source_fd)
    finally:
        os.close(root_fd)


def _finish_rebuild(root: Path, temp: Path, report: RecoveryReport) -> Segment | None:
    """A rebuilt copy left by a crash: finish the job if its damaged original is already in the
    quarantine, else drop it (the original is still there and is salvaged again)."""
    final = temp.with_name(parse_rebuild_temp(temp.name) or "")
    part = temp.with_name(final.name + ".part")
    if not os.path.lexists(part) and not os.path.lexists(final):
        try:
            facts = scan(temp)
        except (Fmp4Error, OSError) as exc:
            log.warning("dropping unfinished rebuild %s: %s", temp.relative_to(root), exc)
        else:
            if facts.fragments and not facts.damaged and facts.complete_size == facts.size:
                _rename(root, temp, final)
                facts.rebuilt = True
                report.repaired += 1
                report.rebuilt += 1
                log.info("finished the rebuild of %s", final.relative_to(root))
                return describe(root, final, facts, flags={"recovered", "rebuilt"})
    log.info("removing unfinished rebuild %s (its original is kept)", temp.relative_to(root))
    temp.unlink(missing_ok=True)
    return None


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
                    _foreign(path, report)
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
