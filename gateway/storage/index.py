"""The recording index: one SQLite row per finished segment, rebuildable from the files alone.

Paths are stored relative to the storage root. The daemon is the only writer; the command line
reads concurrently (WAL mode). Gaps are not stored: they are the holes between consecutive
segments of a camera, computed when listing.

Files moved to the quarantine hold images too, so they have their own table and count in the
totals that retention enforces. A damaged database is reported as :class:`IndexCorrupt`; the
storage then sets it aside with :func:`set_aside` (never deleting it) and rebuilds from the files.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from gateway.storage.record import Segment

__all__ = [
    "GAP_TOLERANCE",
    "Gap",
    "Index",
    "IndexCorrupt",
    "QuarantinedFile",
    "gaps",
    "set_aside",
]

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
_COLUMNS = "path, camera, start, end, bytes, frames, codec, width, height, has_audio"
"""Queries are put together from the fixed names here (``_COLUMNS``, ``_LATER_COLUMNS``,
``_UPDATED``, ``_Q_COLUMNS``) and fixed clauses, never from input; values are always bound
(``?``). Hence the ``noqa: S608`` marks on those queries."""
_LATER_COLUMNS = {
    "flags": ("TEXT NOT NULL DEFAULT ''", "''"),
    "sha256": ("TEXT", "NULL"),
    "clock_synced": ("INTEGER", "NULL"),
    "ended": ("TEXT NOT NULL DEFAULT 'cut'", "'cut'"),
    "seal_seq": ("INTEGER", "NULL"),
}
"""Columns added by later versions: (definition, value read from an index that lacks them)."""
_UPDATED = (
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
_Q_COLUMNS = "path, camera, start, bytes, reason, moved_at"
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


@dataclass(frozen=True, slots=True)
class Gap:
    camera: str
    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(slots=True)
class _Totals:
    """What retention asks for every second, kept by this process's writes."""

    segments: int = 0
    bytes: int = 0
    cameras: dict[str, int] = field(default_factory=dict)
    quarantined: int = 0
    quarantined_bytes: int = 0

    def add(self, camera: str, size: int, sign: int) -> None:
        self.segments += sign
        self.bytes += sign * size
        left = self.cameras.get(camera, 0) + sign * size
        if left > 0:
            self.cameras[camera] = left
        else:
            self.cameras.pop(camera, None)


class Index:
    """Thread-safe access to ``index.sqlite3``; every call is one short transaction.

    The first writable connection runs ``PRAGMA quick_check`` (about 1 s for a month of 64
    cameras, 2.7 million rows, on the reference machine) and raises :class:`IndexCorrupt` if
    the file is damaged; so does any later query that finds damage.
    """

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        self._readonly = readonly
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._checked = False
        self._select_columns = f"{_COLUMNS}, {', '.join(_LATER_COLUMNS)}"
        self._has_quarantine = True
        self._totals: _Totals | None = None
        """Running totals, kept by this process's writes: retention asks every second, and
        summing a month of rows each time would cost more than recording."""

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            db = self._open()
            try:
                self._prepare(db)
            except BaseException:
                with suppress(sqlite3.Error):
                    db.close()
                raise
            self._db = db
        return self._db

    def _open(self) -> sqlite3.Connection:
        if self._readonly:
            return sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
        return sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)

    def _prepare(self, db: sqlite3.Connection) -> None:
        db.execute("PRAGMA busy_timeout=5000")
        if not self._readonly:
            if not self._checked:  # before anything is written to it
                found = [str(r[0]) for r in db.execute("PRAGMA quick_check")]
                if found != ["ok"]:
                    raise IndexCorrupt(self.path, "; ".join(found[:3]))
                self._checked = True
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
            present = _columns(db, "segments")
            for name, (definition, _) in _LATER_COLUMNS.items():
                if name not in present:  # an index made by an older version
                    db.execute(f"ALTER TABLE segments ADD COLUMN {name} {definition}")
            # Sealing asks every second for the rows not sealed yet: a partial index holds only
            # those (none, most of the time), so the question never scans the table.
            db.execute(
                "CREATE INDEX IF NOT EXISTS segments_unsealed ON segments (start) "
                "WHERE seal_seq IS NULL"
            )
        present = _columns(db, "segments")
        self._select_columns = ", ".join(
            [_COLUMNS] + [n if n in present else d for n, (_, d) in _LATER_COLUMNS.items()]
        )
        self._has_quarantine = bool(_columns(db, "quarantine"))

    @contextmanager
    def _cursor(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._connect()
            except IndexCorrupt:
                self._close_locked()
                raise
            except sqlite3.DatabaseError as exc:
                # A vanished or remounted disk leaves a dead handle: reopen on the next call.
                self._close_locked()
                if _is_corrupt(exc):
                    raise IndexCorrupt(self.path, str(exc)) from exc
                raise
            except sqlite3.Error:
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
        self._totals = None

    # -- segments ----------------------------------------------------------------------------

    def add(self, segment: Segment) -> None:
        self.add_many([segment])

    def add_many(self, segments: Iterable[Segment]) -> None:
        batch = list(segments)
        rows = [_values(s) for s in batch]
        with self._cursor() as db:
            totals = self._totals_locked(db)
            db.execute("BEGIN")
            try:
                for segment in batch:
                    old = db.execute(
                        "SELECT camera, bytes FROM segments WHERE path = ?", (segment.path,)
                    ).fetchone()
                    if old is not None:
                        totals.add(str(old[0]), int(old[1]), -1)
                    totals.add(segment.camera, segment.bytes, +1)
                # A row indexed again (a rebuild) keeps the seal it had.
                db.executemany(
                    f"INSERT INTO segments ({_COLUMNS}, {', '.join(_LATER_COLUMNS)}) "  # noqa: S608 - see _COLUMNS
                    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(path) DO UPDATE SET "
                    + ", ".join(f"{c} = excluded.{c}" for c in _UPDATED)
                    + ", sha256 = COALESCE(excluded.sha256, sha256)"
                    ", clock_synced = COALESCE(excluded.clock_synced, clock_synced)"
                    ", seal_seq = COALESCE(excluded.seal_seq, seal_seq)",
                    rows,
                )
                db.execute("COMMIT")
            except BaseException:
                self._totals = None  # recounted from the table on the next call
                with suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                raise

    def remove(self, path: str) -> None:
        with self._cursor() as db:
            totals = self._totals_locked(db)
            old = db.execute(
                "SELECT camera, bytes FROM segments WHERE path = ?", (path,)
            ).fetchone()
            if old is None:
                return
            db.execute("DELETE FROM segments WHERE path = ?", (path,))
            totals.add(str(old[0]), int(old[1]), -1)

    def clear(self) -> None:
        """Forget every segment and quarantined file (the files stay)."""
        with self._cursor() as db:
            db.execute("DELETE FROM segments")
            if self._has_quarantine:
                db.execute("DELETE FROM quarantine")
            self._totals = _Totals()

    def segments(
        self,
        *,
        camera: str | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> list[Segment]:
        """Segments ordered by camera then start, optionally filtered."""
        query = "FROM segments WHERE 1=1"
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
        with self._cursor() as db:  # connected first: which columns exist is known then
            return [_row(r) for r in db.execute(f"SELECT {self._select()} {query}", args)]

    def oldest(
        self,
        limit: int = 16,
        camera: str | None = None,
        *,
        exclude: Sequence[tuple[str, float, float]] = (),
    ) -> list[Segment]:
        """The oldest segments, of one camera or across all cameras, oldest first; ``exclude``:
        (camera, start, end) ranges whose overlapping segments are left out (legal holds)."""
        where: list[str] = []
        args: list[object] = []
        if camera is not None:
            where.append("camera = ?")
            args.append(camera)
        for held_camera, start, end in exclude:
            if camera is not None and held_camera != camera:
                continue
            where.append("NOT (camera = ? AND start < ? AND end > ?)")
            args.extend((held_camera, end, start))
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        with self._cursor() as db:
            rows = db.execute(
                f"SELECT {self._select()} FROM segments {clause}ORDER BY start LIMIT ?",  # noqa: S608 - see _COLUMNS
                (*args, limit),
            ).fetchall()
        return [_row(r) for r in rows]

    def unsealed(self, limit: int = 64) -> list[Segment]:
        """Segments not in their camera's seal chain yet, oldest first."""
        with self._cursor() as db:
            rows = db.execute(
                f"SELECT {self._select()} FROM segments WHERE seal_seq IS NULL "  # noqa: S608 - see _COLUMNS
                "ORDER BY start LIMIT ?",
                (limit,),
            ).fetchall()
        return [_row(r) for r in rows]

    def set_sealed(self, path: str, seq: int, sha256: str) -> None:
        with self._cursor() as db:
            db.execute(
                "UPDATE segments SET seal_seq = ?, sha256 = ? WHERE path = ?", (seq, sha256, path)
            )

    def get(self, path: str) -> Segment | None:
        with self._cursor() as db:
            row = db.execute(
                f"SELECT {self._select()} FROM segments WHERE path = ?",  # noqa: S608 - see _COLUMNS
                (path,),
            ).fetchone()
        return None if row is None else _row(row)

    def totals(self) -> tuple[int, int, float | None]:
        """(segment count, bytes, start of the oldest segment).

        Bytes are those of segments *and* of quarantined files: both hold images, and both
        count against the quota.
        """
        with self._cursor() as db:
            totals = self._totals_locked(db)
            (oldest,) = db.execute("SELECT MIN(start) FROM segments").fetchone()
        return totals.segments, totals.bytes + totals.quarantined_bytes, oldest

    def camera_bytes(self) -> dict[str, int]:
        """Bytes of finished segments per camera (cameras with none are left out)."""
        with self._cursor() as db:
            return dict(self._totals_locked(db, cameras=True).cameras)

    def paths(self) -> set[str]:
        with self._cursor() as db:
            return {r[0] for r in db.execute("SELECT path FROM segments")}

    # -- quarantine --------------------------------------------------------------------------

    def add_quarantined(self, item: QuarantinedFile) -> None:
        with self._cursor() as db:
            totals = self._totals_locked(db)
            db.execute("BEGIN")
            try:
                old = db.execute(
                    "SELECT bytes FROM quarantine WHERE path = ?", (item.path,)
                ).fetchone()
                db.execute(
                    f"INSERT OR REPLACE INTO quarantine ({_Q_COLUMNS}) VALUES (?,?,?,?,?,?)",  # noqa: S608 - see _COLUMNS
                    (item.path, item.camera, item.start, item.bytes, item.reason, item.moved_at),
                )
                db.execute("COMMIT")
            except BaseException:
                self._totals = None
                with suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                raise
            if old is None:
                totals.quarantined += 1
            else:
                totals.quarantined_bytes -= int(old[0])
            totals.quarantined_bytes += item.bytes

    def remove_quarantined(self, path: str) -> None:
        with self._cursor() as db:
            totals = self._totals_locked(db)
            old = db.execute("SELECT bytes FROM quarantine WHERE path = ?", (path,)).fetchone()
            if old is None:
                return
            db.execute("DELETE FROM quarantine WHERE path = ?", (path,))
            totals.quarantined -= 1
            totals.quarantined_bytes -= int(old[0])

    def quarantined(self, limit: int | None = None) -> list[QuarantinedFile]:
        """Quarantined files, oldest recording first."""
        with self._cursor() as db:
            if not self._has_quarantine:
                return []
            rows = db.execute(
                f"SELECT {_Q_COLUMNS} FROM quarantine ORDER BY start LIMIT ?",  # noqa: S608 - see _COLUMNS
                (-1 if limit is None else limit,),
            ).fetchall()
        return [_quarantined(r) for r in rows]

    def quarantine_paths(self) -> set[str]:
        with self._cursor() as db:
            if not self._has_quarantine:
                return set()
            return {r[0] for r in db.execute("SELECT path FROM quarantine")}

    def quarantine_totals(self) -> tuple[int, int]:
        """(count, bytes) of quarantined files."""
        with self._cursor() as db:
            totals = self._totals_locked(db)
        return totals.quarantined, totals.quarantined_bytes

    # -- internals ---------------------------------------------------------------------------

    def _select(self) -> str:
        return self._select_columns

    def _totals_locked(self, db: sqlite3.Connection, *, cameras: bool = False) -> _Totals:
        if self._readonly and not cameras:
            # Another process writes: count afresh, without the per-camera split nobody asked.
            count, size = db.execute(
                "SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM segments"
            ).fetchone()
            totals = _Totals(segments=int(count), bytes=int(size))
            self._count_quarantine(db, totals)
            return totals
        if self._totals is None or self._readonly:
            totals = _Totals()
            # NOT INDEXED: one pass over the table (1.3 s for 2.7 million rows) rather than a
            # walk of the camera index with a table lookup per row (4.9 s).
            for camera, count, size in db.execute(
                "SELECT camera, COUNT(*), COALESCE(SUM(bytes), 0) "
                "FROM segments NOT INDEXED GROUP BY camera"
            ):
                totals.segments += int(count)
                totals.bytes += int(size)
                if int(size) > 0:
                    totals.cameras[str(camera)] = int(size)
            self._count_quarantine(db, totals)
            self._totals = totals
        return self._totals

    def _count_quarantine(self, db: sqlite3.Connection, totals: _Totals) -> None:
        if self._has_quarantine:
            count, size = db.execute(
                "SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM quarantine"
            ).fetchone()
            totals.quarantined, totals.quarantined_bytes = int(count), int(size)

    def finish(self) -> None:
        """Fold the write-ahead log into the database file and close it (before it is moved)."""
        with self._cursor() as db:
            db.execute("PRAGMA journal_mode=DELETE")
        self.close()


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


def gaps(segments: list[Segment]) -> list[Gap]:
    """Holes longer than :data:`GAP_TOLERANCE` between consecutive segments of each camera."""
    found: list[Gap] = []
    previous: dict[str, Segment] = {}
    for segment in sorted(segments, key=lambda s: (s.camera, s.start)):
        before = previous.get(segment.camera)
        if before is not None and segment.start - before.end > GAP_TOLERANCE:
            found.append(Gap(segment.camera, before.end, segment.start))
        previous[segment.camera] = segment
    return found


def _is_corrupt(exc: sqlite3.DatabaseError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF in (_SQLITE_CORRUPT, _SQLITE_NOTADB)
    text = str(exc)
    return "malformed" in text or "not a database" in text


def _columns(db: sqlite3.Connection, table: str) -> set[str]:
    return {str(r[1]) for r in db.execute(f"PRAGMA table_info({table})")}


def _values(s: Segment) -> tuple[object, ...]:
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


def _row(row: tuple[object, ...]) -> Segment:
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


def _quarantined(row: tuple[object, ...]) -> QuarantinedFile:
    path, camera, start, size, reason, moved_at = row
    return QuarantinedFile(
        path=str(path),
        camera=str(camera),
        start=float(start),  # type: ignore[arg-type]
        bytes=int(size),  # type: ignore[call-overload]
        reason=str(reason),
        moved_at=float(moved_at),  # type: ignore[arg-type]
    )
