"""The index's database file: its tables, how an older file is brought up to date, how rows map
to records, and what damage looks like.

:class:`~gateway.storage.index.Index` runs its queries over what is defined here. An index made
by an older version lacks the columns of :data:`LATER_COLUMNS`: a writable connection adds them
(:func:`migrate`), a read-only one reads their defaults instead (:func:`select_columns`).
"""

from __future__ import annotations

import os
import sqlite3
import time
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from gateway.storage.record import Segment

__all__ = [
    "COLUMNS",
    "LATER_COLUMNS",
    "Q_COLUMNS",
    "UPDATED",
    "IndexCorrupt",
    "QuarantinedFile",
    "check_integrity",
    "columns",
    "is_corrupt",
    "migrate",
    "quarantined_from_row",
    "segment_from_row",
    "segment_values",
    "select_columns",
    "set_aside",
]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS segments (
    path TEXT PRIMARY KEY,
    camera TEXT NOT NULL,
    start REAL NOT NULL,
    end REAL NOT NULL,
    bytes INTEGER NOT NULL,
    frames INTEGER NOT NULL,
    codec TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    has_audio INTEGER NOT NULL,
    flags TEXT NOT NULL DEFAULT '',
    sha256 TEXT,
    clock_synced INTEGER,
    ended TEXT NOT NULL DEFAULT 'cut',
    seal_seq INTEGER
);
CREATE INDEX IF NOT EXISTS segments_start ON segments (start);
CREATE INDEX IF NOT EXISTS segments_camera_start ON segments (camera, start);
CREATE TABLE IF NOT EXISTS quarantine (
    path TEXT PRIMARY KEY,
    camera TEXT NOT NULL,
    start REAL NOT NULL,
    bytes INTEGER NOT NULL,
    reason TEXT NOT NULL,
    moved_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS quarantine_start ON quarantine (start);
"""
COLUMNS = "path, camera, start, end, bytes, frames, codec, width, height, has_audio"
"""Queries are put together from the fixed names here (``COLUMNS``, ``LATER_COLUMNS``,
``UPDATED``, ``Q_COLUMNS``) and fixed clauses, never from input; values are always bound
(``?``). Hence the ``noqa: S608`` marks on those queries."""
LATER_COLUMNS = {
    "flags": ("TEXT NOT NULL DEFAULT ''", "''"),
    "sha256": ("TEXT", "NULL"),
    "clock_synced": ("INTEGER", "NULL"),
    "ended": ("TEXT NOT NULL DEFAULT 'cut'", "'cut'"),
    "seal_seq": ("INTEGER", "NULL"),
}
"""Columns added by later versions: (definition, value read from an index that lacks them)."""
UPDATED = (
    "camera",
    "start",
    "end",
    "bytes",
    "frames",
    "codec",
    "width",
    "height",
    "has_audio",
    "flags",
    "ended",
)
Q_COLUMNS = "path, camera, start, bytes, reason, moved_at"
_SQLITE_CORRUPT = 11
_SQLITE_NOTADB = 26


class IndexCorrupt(sqlite3.DatabaseError):
    """``index.sqlite3`` is damaged (not a database, or fails ``PRAGMA quick_check``).

    A subclass of ``sqlite3.DatabaseError``, so that code that only knows SQLite errors still
    treats it as one; ``reason`` says what SQLite found.
    """

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"index {path} is damaged: {reason}")
        self.path = path
        self.reason = reason


@dataclass(frozen=True, slots=True)
class QuarantinedFile:
    path: str
    """Relative to the storage root: ``quarantine/<camera>/<day>/<name>``."""
    camera: str
    """The camera it was recorded for, or '' when not known."""
    start: float
    """Start of the recording (from its name), else the file's modification time: what
    ``max_age`` is counted from."""
    bytes: int
    reason: str
    moved_at: float


def check_integrity(db: sqlite3.Connection, path: Path) -> None:
    """``PRAGMA quick_check``: raise :class:`IndexCorrupt` unless SQLite finds the file sound."""
    found = [str(r[0]) for r in db.execute("PRAGMA quick_check")]
    if found != ["ok"]:
        raise IndexCorrupt(path, "; ".join(found[:3]))


def migrate(db: sqlite3.Connection) -> None:
    """Create what is missing: tables, indexes, and the columns an older version did not have."""
    db.executescript(_SCHEMA)
    present = columns(db, "segments")
    for name, (definition, _) in LATER_COLUMNS.items():
        if name not in present:  # an index made by an older version
            db.execute(f"ALTER TABLE segments ADD COLUMN {name} {definition}")
    # Sealing asks every second for the rows not sealed yet: a partial index holds only
    # those (none, most of the time), so the question never scans the table.
    db.execute(
        "CREATE INDEX IF NOT EXISTS segments_unsealed ON segments (start) WHERE seal_seq IS NULL"
    )


def select_columns(db: sqlite3.Connection) -> str:
    """The columns segment queries select: those the file lacks are read as their default."""
    present = columns(db, "segments")
    return ", ".join([COLUMNS] + [n if n in present else d for n, (_, d) in LATER_COLUMNS.items()])


def set_aside(path: Path) -> Path:
    """Rename a damaged index and its ``-wal``/``-shm`` files to ``<name>.corrupt-<UTC stamp>``.

    Nothing is deleted: the copy stays for whoever wants to look at it. The log files are moved
    first, so that a new index never finds an old log next to it. The caller must have closed
    every connection to it. Returns the new path of the database file.
    """
    stamp = datetime.fromtimestamp(time.time(), UTC).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    attempt = 1
    while any(Path(f"{target}{s}").exists() for s in ("", "-wal", "-shm")):
        target = path.with_name(f"{path.name}.corrupt-{stamp}.{attempt}")
        attempt += 1
    for suffix in ("-wal", "-shm", ""):
        with suppress(FileNotFoundError):
            os.rename(f"{path}{suffix}", f"{target}{suffix}")
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return target


def is_corrupt(exc: sqlite3.DatabaseError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF in (_SQLITE_CORRUPT, _SQLITE_NOTADB)
    text = str(exc)
    return "malformed" in text or "not a database" in text


def columns(db: sqlite3.Connection, table: str) -> set[str]:
    return {str(r[1]) for r in db.execute(f"PRAGMA table_info({table})")}


def segment_values(s: Segment) -> tuple[object, ...]:
    if any("," in flag for flag in s.flags):
        raise ValueError(f"segment flag with a comma: {sorted(s.flags)}")
    return (
        s.path,
        s.camera,
        s.start,
        s.end,
        s.bytes,
        s.frames,
        s.codec,
        s.width,
        s.height,
        int(s.has_audio),
        ",".join(sorted(s.flags)),
        s.sha256,
        None if s.clock_synced is None else int(s.clock_synced),
        s.ended,
        s.seal_seq,
    )


def segment_from_row(row: tuple[object, ...]) -> Segment:
    path, camera, start, end, size, frames, codec, width, height, audio, flags = row[:11]
    sha256, synced, ended, seal_seq = row[11:]
    return Segment(
        path=str(path),
        camera=str(camera),
        start=float(start),  # type: ignore[arg-type]
        end=float(end),  # type: ignore[arg-type]
        bytes=int(size),  # type: ignore[call-overload]
        frames=int(frames),  # type: ignore[call-overload]
        codec=str(codec),
        width=int(width),  # type: ignore[call-overload]
        height=int(height),  # type: ignore[call-overload]
        has_audio=bool(audio),
        flags=frozenset(f for f in str(flags).split(",") if f),
        sha256=None if sha256 is None else str(sha256),
        clock_synced=None if synced is None else bool(synced),
        ended=str(ended),
        seal_seq=None if seal_seq is None else int(seal_seq),  # type: ignore[call-overload]
    )


def quarantined_from_row(row: tuple[object, ...]) -> QuarantinedFile:
    path, camera, start, size, reason, moved_at = row
    return QuarantinedFile(
        path=str(path),
        camera=str(camera),
        start=float(start),  # type: ignore[arg-type]
        bytes=int(size),  # type: ignore[call-overload]
        reason=str(reason),
        moved_at=float(moved_at),  # type: ignore[arg-type]
    )
