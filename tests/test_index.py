"""The recording index keeps exact running totals, as retention reads them every second."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from gateway.storage.index import Index, IndexedSegment


def _segment(name: str, start: float, size: int) -> IndexedSegment:
    return IndexedSegment(
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
