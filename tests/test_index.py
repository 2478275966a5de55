"""The recording index: exact running totals (retention reads them every second), flags,
the quarantine table, and damaged databases reported and set aside."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from gateway.storage.index import Index, IndexCorrupt, QuarantinedFile, set_aside
from gateway.storage.record import Segment


def _segment(name: str, start: float, size: int) -> Segment:
    return Segment(
        path=f"cam/2026-11-25/{name}.mp4",
        camera="cam",
        start=start,
        end=start + 10,
        bytes=size,
        frames=250,
        codec="h264",
        width=1920,
        height=1080,
        has_audio=False,
    )


def _sql_totals(path: Path) -> tuple[int, int]:
    db = sqlite3.connect(path)
    count, total = db.execute("SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM segments").fetchone()
    db.close()
    return int(count), int(total)


def test_running_totals_match_the_table_through_adds_replacements_and_removals(
    tmp_path: Path,
) -> None:
    path = tmp_path / "index.sqlite3"
    index = Index(path)
    index.add_many([_segment("a", 1, 100), _segment("b", 2, 200)])
    index.add(_segment("a", 1, 150))  # re-indexed with a new size: replaced, not added
    index.remove("cam/2026-11-25/b.mp4")
    index.remove("cam/2026-11-25/missing.mp4")  # nothing to remove
    index.add(_segment("c", 3, 300))
    count, total, oldest = index.totals()
    assert (count, total) == _sql_totals(path) == (2, 450)
    assert oldest == 1

    # A second process (here: a fresh handle) starts from what the table holds.
    index.close()
    reopened = Index(path)
    assert reopened.totals()[:2] == (2, 450)
    reopened.clear()
    assert reopened.totals() == (0, 0, None)
    reopened.close()


def _camera_sql(path: Path) -> dict[str, int]:
    db = sqlite3.connect(path)
    rows = db.execute("SELECT camera, SUM(bytes) FROM segments GROUP BY camera").fetchall()
    db.close()
    return {str(c): int(b) for c, b in rows if b}


def _on(camera: str, name: str, start: float, size: int) -> Segment:
    return replace(_segment(name, start, size), camera=camera, path=f"{camera}/d/{name}.mp4")


def test_per_camera_totals_follow_adds_replacements_and_removals(tmp_path: Path) -> None:
    path = tmp_path / "index.sqlite3"
    index = Index(path)
    index.add_many([_on("a", "1", 1, 100), _on("a", "2", 2, 200), _on("b", "3", 3, 50)])
    index.add(replace(_on("a", "2", 2, 70), camera="b"))  # re-indexed under another camera
    index.remove("a/d/1.mp4")
    assert index.camera_bytes() == _camera_sql(path) == {"b": 120}
    index.remove("b/d/3.mp4")
    index.remove("a/d/2.mp4")
    assert index.camera_bytes() == _camera_sql(path) == {}
    index.close()


def test_oldest_of_one_camera_or_of_all(tmp_path: Path) -> None:
    index = Index(tmp_path / "index.sqlite3")
    index.add_many([_on("a", "1", 5, 1), _on("b", "2", 1, 1), _on("a", "3", 3, 1)])
    assert [s.start for s in index.oldest(2)] == [1, 3]
    assert [s.start for s in index.oldest(5, camera="a")] == [3, 5]
    assert index.oldest(5, camera="nobody") == []
    index.close()


def test_flags_are_kept_and_an_older_index_gains_the_column(tmp_path: Path) -> None:
    path = tmp_path / "index.sqlite3"
    old = sqlite3.connect(path)  # the schema before flags and the quarantine existed
    old.execute(
        "CREATE TABLE segments (path TEXT PRIMARY KEY, camera TEXT NOT NULL, start REAL NOT NULL,"
        " end REAL NOT NULL, bytes INTEGER NOT NULL, frames INTEGER NOT NULL, codec TEXT NOT NULL,"
        " width INTEGER NOT NULL, height INTEGER NOT NULL, has_audio INTEGER NOT NULL)"
    )
    old.execute(
        "INSERT INTO segments VALUES ('cam/2026-11-25/a.mp4','cam',1,11,100,250,'h264',1,1,0)"
    )
    old.commit()
    old.close()

    reader = Index(path, readonly=True)  # the command line may meet it before the daemon does
    assert [s.flags for s in reader.segments()] == [frozenset()]
    assert reader.quarantined() == [] and reader.totals()[:2] == (1, 100)
    reader.close()

    index = Index(path)
    index.add(replace(_segment("b", 2, 10), flags=frozenset({"recovered", "rebuilt"})))
    flags = {s.path: s.flags for s in index.segments()}
    assert flags == {
        "cam/2026-11-25/a.mp4": frozenset(),
        "cam/2026-11-25/b.mp4": frozenset({"recovered", "rebuilt"}),
    }
    index.close()


def test_quarantined_files_count_in_the_totals(tmp_path: Path) -> None:
    path = tmp_path / "index.sqlite3"
    index = Index(path)
    index.add(_segment("a", 10, 1000))
    item = QuarantinedFile("quarantine/cam/2026-11-25/x.mp4", "cam", 5, 300, "unreadable", 20)
    index.add_quarantined(item)
    index.add_quarantined(replace(item, bytes=400))  # the same file again: replaced
    assert index.totals() == (1, 1400, 10)
    assert index.quarantine_totals() == (1, 400)
    assert index.camera_bytes() == {"cam": 1000}  # the fair share counts recordings only
    index.close()
    reopened = Index(path)
    assert reopened.totals() == (1, 1400, 10)
    assert reopened.quarantined() == [replace(item, bytes=400)]
    reopened.remove_quarantined(item.path)
    assert reopened.totals() == (1, 1000, 10)
    reopened.close()


def test_a_damaged_index_is_reported_and_set_aside_never_deleted(tmp_path: Path) -> None:
    path = tmp_path / "index.sqlite3"
    index = Index(path)
    index.add_many(_segment(str(i), i, 100) for i in range(2000))
    index.close()
    data = bytearray(path.read_bytes())
    page = 4096
    data[3 * page : 4 * page] = b"\xa5" * page  # a page of the table overwritten
    path.write_bytes(data)

    with pytest.raises(IndexCorrupt) as caught:
        Index(path).totals()
    assert caught.value.path == path
    Path(f"{path}-wal").write_bytes(b"log")  # as a crash leaves them
    Path(f"{path}-shm").write_bytes(b"shm")

    aside = set_aside(path)

    assert aside.name.startswith("index.sqlite3.corrupt-")
    assert aside.read_bytes() == bytes(data)
    assert Path(f"{aside}-wal").exists() and Path(f"{aside}-shm").exists()
    assert not path.exists() and not Path(f"{path}-wal").exists()
    fresh = Index(path)
    assert fresh.totals() == (0, 0, None)
    fresh.close()
    # A second damaged index set aside in the same second does not overwrite the first.
    path.write_bytes(b"not a database at all" * 100)
    with pytest.raises(IndexCorrupt):
        Index(path).paths()
    second = set_aside(path)
    assert second != aside and aside.read_bytes() == bytes(data)
