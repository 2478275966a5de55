"""Bringing the files and the index back into agreement: after a crash, and on request.

A ``.part`` segment left by a crash is cut to its last complete fragment, renamed and indexed;
one with nothing playable is removed. :func:`reconcile` adds unindexed files and forgets rows
whose files are gone; :func:`reindex` rebuilds the whole index from the files alone.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from gateway.recorder.fmp4 import Fmp4Error, SegmentFacts, repair, scan
from gateway.storage.index import Index, IndexedSegment
from gateway.storage.naming import FINAL_SUFFIX, PART_SUFFIX, final_path, parse_segment_path

__all__ = ["RecoveryReport", "reconcile", "reindex", "salvage", "segment_files"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class RecoveryReport:
    repaired: int = 0
    """``.part`` files cut to their last complete fragment and kept."""
    discarded: int = 0
    """``.part`` files with nothing playable, removed."""
    added: int = 0
    forgotten: int = 0
    unreadable: int = 0
    bytes_cut: int = 0

    def summary(self) -> str:
        return (
            f"{self.repaired} interrupted segment(s) repaired, {self.discarded} empty one(s) "
            f"removed, {self.added} file(s) indexed, {self.forgotten} missing file(s) forgotten, "
            f"{self.unreadable} unreadable"
        )


def segment_files(root: Path) -> Iterator[Path]:
    """Every segment file (finished or not) under ``root``: ``<camera>/<day>/<file>``."""
    for camera in _dirs(root):
        for day in _dirs(camera):
            with os.scandir(day) as entries:
                for entry in entries:
                    if entry.is_file() and (
                        entry.name.endswith(FINAL_SUFFIX) or entry.name.endswith(PART_SUFFIX)
                    ):
                        yield Path(entry.path)


def _dirs(path: Path) -> list[Path]:
    try:
        with os.scandir(path) as entries:
            return sorted(
                Path(e.path) for e in entries if e.is_dir() and not e.name.startswith(".")
            )
    except FileNotFoundError:
        return []


def describe(root: Path, path: Path, facts: SegmentFacts) -> IndexedSegment | None:
    """The index row of a finished segment file, from its name and its boxes."""
    name = parse_segment_path(path)
    if name is None or name.partial:
        return None
    video = facts.video
    return IndexedSegment(
        path=str(path.relative_to(root)),
        camera=name.camera,
        start=name.start,
        end=name.start + facts.duration,
        bytes=facts.size,
        frames=facts.frames,
        codec=facts.codec,
        width=video.width if video else 0,
        height=video.height if video else 0,
        has_audio=facts.has_audio,
    )


def salvage(
    root: Path, part: Path, report: RecoveryReport | None = None, *, quiet: bool = False
) -> IndexedSegment | None:
    """Cut an interrupted ``.part`` file to whole fragments and rename it; None if nothing plays.

    ``quiet``: a file with nothing playable is removed without a warning (a write that failed
    at once, e.g. on a full disk, leaves such files; they are not news).
    """
    report = report if report is not None else RecoveryReport()
    size_before = part.stat().st_size
    try:
        facts = repair(part)
    except (Fmp4Error, OSError) as exc:
        log.log(
            logging.DEBUG if quiet else logging.WARNING,
            "removing interrupted segment %s: %s",
            part.relative_to(root),
            exc,
        )
        part.unlink(missing_ok=True)
        report.discarded += 1
        return None
    final = final_path(part)
    os.replace(part, final)
    report.repaired += 1
    report.bytes_cut += size_before - facts.size
    log.info(
        "repaired interrupted segment %s: kept %.1f s, %d frames, cut %d bytes of partial fragment",
        final.relative_to(root),
        facts.duration,
        facts.frames,
        size_before - facts.size,
    )
    return describe(root, final, facts)


def reconcile(root: Path, index: Index) -> RecoveryReport:
    """Repair interrupted segments, index unindexed files, forget rows of missing files."""
    report = RecoveryReport()
    known = index.paths()
    on_disk: set[str] = set()
    new_rows: list[IndexedSegment] = []
    for path in segment_files(root):
        if path.name.endswith(PART_SUFFIX):
            row = salvage(root, path, report)
        else:
            relative = str(path.relative_to(root))
            on_disk.add(relative)
            if relative in known:
                continue
            row = _read(root, path, report)
            if row is not None:
                report.added += 1  # repaired .part files are counted in report.repaired
        if row is not None:
            on_disk.add(row.path)
            new_rows.append(row)
    index.add_many(new_rows)
    for missing in known - on_disk:
        index.remove(missing)
        report.forgotten += 1
    return report


def reindex(root: Path, index: Index) -> RecoveryReport:
    """Rebuild the index from the segment files alone."""
    index.clear()
    return reconcile(root, index)


def _read(root: Path, path: Path, report: RecoveryReport) -> IndexedSegment | None:
    try:
        row = describe(root, path, scan(path))
    except (Fmp4Error, OSError) as exc:
        log.warning("cannot index %s: %s", path.relative_to(root), exc)
        report.unreadable += 1
        return None
    if row is None:
        report.unreadable += 1
    return row
