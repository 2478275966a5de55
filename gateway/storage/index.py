"""The recording index: one SQLite row per finished segment, rebuildable from the files alone.

Its queries and running totals; the database file itself (tables, migrations, rows to records,
damage) is :mod:`gateway.storage.index_schema`. Paths are relative to the storage root. The
daemon is the only writer; the command line reads concurrently (WAL mode).

Files moved to the quarantine hold images too, so they have their own table and count in the
totals that retention enforces. A damaged database is reported as :class:`IndexCorrupt`; the
storage then sets it aside with :func:`set_aside` (never deleting it) and rebuilds from the files.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from gateway.storage.index_schema import (
    COLUMNS,
    LATER_COLUMNS,
    Q_COLUMNS,
    UPDATED,
    IndexCorrupt,
    QuarantinedFile,
    check_integrity,
    columns,
    is_corrupt,
    migrate,
    quarantined_from_row,
    segment_from_row,
    segment_values,
    select_columns,
    set_aside,
)
from gateway.storage.record import GAP_TOLERANCE, Gap, Segment, gaps

__all__ = [
    "GAP_TOLERANCE",
    "Gap",
    "Index",
    "IndexCorrupt",
    "QuarantinedFile",
    "gaps",
    "set_aside",
]


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
        self._select_columns = f"{COLUMNS}, {', '.join(LATER_COLUMNS)}"
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
                check_integrity(db, self.path)
                self._checked = True
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            migrate(db)
        self._select_columns = select_columns(db)
        self._has_quarantine = bool(columns(db, "quarantine"))

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
                if is_corrupt(exc):
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
        rows = [segment_values(s) for s in batch]
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
                    f"INSERT INTO segments ({COLUMNS}, {', '.join(LATER_COLUMNS)}) "  # noqa: S608 - see index_schema.COLUMNS
                    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(path) DO UPDATE SET "
                    + ", ".join(f"{c} = excluded.{c}" for c in UPDATED)
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
            return [
                segment_from_row(r) for r in db.execute(f"SELECT {self._select()} {query}", args)
            ]

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
                f"SELECT {self._select()} FROM segments {clause}ORDER BY start LIMIT ?",  # noqa: S608 - see index_schema.COLUMNS
                (*args, limit),
            ).fetchall()
        return [segment_from_row(r) for r in rows]

    def unsealed(self, limit: int = 64) -> list[Segment]:
        """Segments not in their camera's seal chain yet, oldest first."""
        with self._cursor() as db:
            rows = db.execute(
                f"SELECT {self._select()} FROM segments WHERE seal_seq IS NULL "  # noqa: S608 - see index_schema.COLUMNS
                "ORDER BY start LIMIT ?",
                (limit,),
            ).fetchall()
        return [segment_from_row(r) for r in rows]

    def set_sealed(self, path: str, seq: int, sha256: str) -> None:
        with self._cursor() as db:
            db.execute(
                "UPDATE segments SET seal_seq = ?, sha256 = ? WHERE path = ?", (seq, sha256, path)
            )

    def get(self, path: str) -> Segment | None:
        with self._cursor() as db:
            row = db.execute(
                f"SELECT {self._select()} FROM segments WHERE path = ?",  # noqa: S608 - see index_schema.COLUMNS
                (path,),
            ).fetchone()
        return None if row is None else segment_from_row(row)

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
                    f"INSERT OR REPLACE INTO quarantine ({Q_COLUMNS}) VALUES (?,?,?,?,?,?)",  # noqa: S608 - see index_schema.COLUMNS
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
                f"SELECT {Q_COLUMNS} FROM quarantine ORDER BY start LIMIT ?",  # noqa: S608 - see index_schema.COLUMNS
                (-1 if limit is None else limit,),
            ).fetchall()
        return [quarantined_from_row(r) for r in rows]

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
