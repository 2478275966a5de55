"""One file of the storage tree brought back into use: the repair half of recovery.

An interrupted ``.part`` is cut to its last good fragment, or rebuilt from its good fragments
(its original going to the quarantine), and renamed to a free finished name; a rebuilt copy
left by a crash is finished or dropped; a finished segment is read into its index row, or
quarantined when it cannot be used. :mod:`gateway.storage.recovery` walks the tree and calls
these for each file; the storage salvages a ``.part`` its writer gave up on the same way.
"""

from __future__ import annotations

import errno
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from gateway.media.fmp4 import Fmp4Error, SegmentFacts, repair, scan
from gateway.storage.naming import (
    BadPathError,
    SegmentName,
    check_segment_path,
    final_path,
    open_dir,
    open_root,
    parse_rebuild_temp,
    parse_segment_path,
    rebuild_temp_path,
    segment_path,
)
from gateway.storage.quarantine import Quarantine, rename_noreplace
from gateway.storage.record import Segment

__all__ = [
    "RecoveryReport",
    "describe",
    "finish_rebuild",
    "is_placed",
    "leave_foreign",
    "read_finished",
    "salvage",
]

log = logging.getLogger(__name__)

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


def leave_foreign(path: Path, report: RecoveryReport) -> None:
    """A file or folder that is not one of ours: logged, counted, left alone."""
    log.info("leaving %s alone: not a recording of ours", path)
    report.foreign += 1


def is_placed(relative: str) -> bool:
    """The relative path is a segment's, in its own camera's and day's folder."""
    try:
        check_segment_path(relative)
    except BadPathError:
        return False
    return True


def read_finished(
    root: Path, path: Path, report: RecoveryReport, quarantine: Quarantine
) -> Segment | None:
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
        leave_foreign(part, report)
        return None
    if not is_placed(str(final_path(relative))):
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


def finish_rebuild(root: Path, temp: Path, report: RecoveryReport) -> Segment | None:
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
