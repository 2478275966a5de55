"""The recording index: one SQLite row per finished segment, rebuildable from the files alone.

Paths are stored relative to the storage root. The daemon is the only writer; the command line
reads concurrently (WAL mode). Gaps are not stored: they are the holes between consecutive
segments of a camera, computed when listing.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

__all__ = ["GAP_TOLERANCE", "Gap", "Index", "IndexedSegment", "gaps"]

GAP_TOLERANCE = 0.5
"""Seconds between two segments of a camera that still count as continuous."""

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
    has_audio INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS segments_start ON segments (start);
CREATE INDEX IF NOT EXISTS segments_camera_start ON segments (camera, start);
"""
_COLUMNS = "path, camera, start, end, bytes, frames, codec, width, height, has_audio"


@dataclass(frozen=True, slots=True)
class IndexedSegment:
    path: str
    """Relative to the storage root."""
    camera: str
    start: float
    end: float
    bytes: int
    frames: int
    codec: str
    width: int
    height: int
    has_audio: bool

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class Gap:
    camera: str
    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


class Index:
    """Thread-safe access to ``index.sqlite3``; every call is one short transaction."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        self._readonly = readonly
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._count_bytes: tuple[int, int] | None = None
        """Running (segments, bytes), kept by this process's writes: retention asks every
        second, and summing a month of rows each time would cost more than recording."""

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            if self._readonly:
                db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
            else:
                db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                db.executescript(_SCHEMA)
            db.execute("PRAGMA busy_timeout=5000")
            self._db = db
        return self._db

    @contextmanager
    def _cursor(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._connect()
            except sqlite3.Error:
                # A vanished or remounted disk leaves a dead handle: reopen on the next call.
                self._close_locked()
                raise

    def close(self) -> None:
        with self._lock:
            self._close_locked()

    def _close_locked(self) -> None:
        if self._db is not None:
            with suppress(sqlite3.Error):
                self._db.close()
            self._db = None
        self._count_bytes = None

    def add(self, segment: IndexedSegment) -> None:
        self.add_many([segment])

    def add_many(self, segments: Iterable[IndexedSegment]) -> None:
        rows = [
            (
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
            )
            for s in segments
        ]
        with self._cursor() as db:
            count, total = self._totals_locked(db)
            db.execute("BEGIN")
            for row in rows:
                old = db.execute("SELECT bytes FROM segments WHERE path = ?", (row[0],)).fetchone()
                if old is None:
                    count += 1
                else:
                    total -= int(old[0])
                total += int(row[4])
            db.executemany(
                f"INSERT OR REPLACE INTO segments ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)", rows
            )
            db.execute("COMMIT")
            self._count_bytes = (count, total)

    def remove(self, path: str) -> None:
        with self._cursor() as db:
            count, total = self._totals_locked(db)
            old = db.execute("SELECT bytes FROM segments WHERE path = ?", (path,)).fetchone()
            if old is None:
                return
            db.execute("DELETE FROM segments WHERE path = ?", (path,))
            self._count_bytes = (count - 1, total - int(old[0]))

    def clear(self) -> None:
        with self._cursor() as db:
            db.execute("DELETE FROM segments")
            self._count_bytes = (0, 0)

    def _totals_locked(self, db: sqlite3.Connection) -> tuple[int, int]:
        if self._count_bytes is None or self._readonly:
            count, total = db.execute(
                "SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM segments"
            ).fetchone()
            self._count_bytes = (int(count), int(total))
        return self._count_bytes

    def segments(
        self,
        *,
        camera: str | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> list[IndexedSegment]:
        """Segments ordered by camera then start, optionally filtered."""
        query = f"SELECT {_COLUMNS} FROM segments WHERE 1=1"
        args: list[object] = []
        if camera is not None:
            query += " AND camera = ?"
            args.append(camera)
        if since is not None:
            query += " AND end >= ?"
            args.append(since)
        if until is not None:
            query += " AND start <= ?"
            args.append(until)
        query += " ORDER BY camera, start"
        with self._cursor() as db:
            return [_row(r) for r in db.execute(query, args)]

    def oldest(self, limit: int = 16) -> list[IndexedSegment]:
        """The oldest segments across all cameras, oldest first."""
        with self._cursor() as db:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM segments ORDER BY start LIMIT ?", (limit,)
            ).fetchall()
        return [_row(r) for r in rows]

    def totals(self) -> tuple[int, int, float | None]:
        """(segment count, bytes, start of the oldest segment)."""
        with self._cursor() as db:
            count, total = self._totals_locked(db)
            (oldest,) = db.execute("SELECT MIN(start) FROM segments").fetchone()
        return count, total, oldest

    def paths(self) -> set[str]:
        with self._cursor() as db:
            return {r[0] for r in db.execute("SELECT path FROM segments")}


def gaps(segments: list[IndexedSegment]) -> list[Gap]:
    """Holes longer than :data:`GAP_TOLERANCE` between consecutive segments of each camera."""
    found: list[Gap] = []
    previous: dict[str, IndexedSegment] = {}
    for segment in sorted(segments, key=lambda s: (s.camera, s.start)):
        before = previous.get(segment.camera)
        if before is not None and segment.start - before.end > GAP_TOLERANCE:
            found.append(Gap(segment.camera, before.end, segment.start))
        previous[segment.camera] = segment
    return found


def _row(row: tuple[object, ...]) -> IndexedSegment:
    path, camera, start, end, size, frames, codec, width, height, audio = row
    return IndexedSegment(
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
    )
