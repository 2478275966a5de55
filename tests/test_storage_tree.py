"""A storage tree is untrusted input: damaged, hostile or foreign files never crash, wedge or
bloat the daemon, never cost a camera its recordings, and are never silently deleted.

Segments are real ffmpeg files; the damage is crafted into them byte by byte.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fmp4_craft import (
    damaged,
    ffmpeg_segment,
    ffprobe_packets,
    forty_byte_empty_tkhd,
    fragments,
    with_giant_trun,
)
from helpers import audit_entries, cli, decode_errors, write_config

from gateway.media.fmp4 import repair
from gateway.storage import recovery
from gateway.storage.index import Index, IndexCorrupt, set_aside
from gateway.storage.naming import rebuild_temp_path, segment_path
from gateway.storage.quarantine import Quarantine
from gateway.storage.record import Segment
from gateway.storage.recovery import rebuild_index, reconcile, salvage
from gateway.storage.retention import RetentionPolicy, enforce

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")

T0 = time.time() - 3600
"""Segments of an hour ago: well within max_age."""


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return ffmpeg_segment(tmp_path_factory.mktemp("clip") / "clip.mp4").read_bytes()


def place(root: Path, camera: str, start: float, data: bytes, *, part: bool = False) -> Path:
    """A file where the recorder would put a segment of ``camera`` started at ``start``."""
    path = segment_path(root, camera, start)
    if not part:
        path = path.with_name(path.name.removesuffix(".part"))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def digest(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (links not followed), by content."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


class Journal:
    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    def __call__(self, entry: dict[str, Any]) -> None:
        self.entries.append(entry)


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "storage"
    root.mkdir()
    yield root


def test_a_crafted_tree_is_reconciled_and_nothing_outside_it_is_touched(
    tmp_path: Path, tree: Path, clip: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    root = tree
    outside = tmp_path / "outside"
    (outside / "2026-01-01").mkdir(parents=True)
    (outside / "2026-01-01" / "cam-link_20260101T000000.000Z.mp4").write_bytes(clip)
    (outside / "2026-01-01" / "cam-link_20260101T000100.000Z.mp4.part").write_bytes(clip[:5000])
    (outside / "x").write_bytes(b"precious")
    good = place(root, "cam-a", T0, clip)
    tkhd = place(root, "cam-a", T0 + 10, forty_byte_empty_tkhd())
    giant = place(root, "cam-b", T0, with_giant_trun(clip, 0xFFFFFFFF))
    first_moof = fragments(clip)[0][0]
    part = place(root, "cam-b", T0 + 10, damaged(clip, first_moof + 4, 40), part=True)
    (root / "cam-link").symlink_to(outside)
    (good.parent / "notes.txt").write_text("not a recording")
    (root / "cam-a" / "README").write_text("not a day folder")
    (root / "audit").mkdir()
    journal_file = root / "audit" / "forward-sessions.jsonl"
    journal_file.write_text('{"event": "forward_start"}\n')
    index = Index(root / "index.sqlite3")
    bad_rows = ["../outside/x", "audit/forward-sessions.jsonl"]
    index.add_many(_row(path) for path in bad_rows)
    outside_before = digest(outside)
    journal = Journal()
    quarantine = Quarantine(root, index, journal)
    caplog.set_level(logging.INFO, logger="gateway.storage")

    started = time.monotonic()
    report = reconcile(root, index, quarantine=quarantine)
    elapsed = time.monotonic() - started

    assert elapsed < 2, f"{elapsed:.2f} s"
    rows = {r.path: r for r in index.segments()}
    # Good files are indexed: the finished one, the lying one (its good fragments), the
    # rebuilt .part; the empty tkhd and the damaged original of the .part are quarantined.
    assert set(rows) == {
        str(good.relative_to(root)),
        str(giant.relative_to(root)),
        str(part.relative_to(root)).removesuffix(".part"),
    }
    # Its first fragment lied: the rest is kept as it is, and does not start on a keyframe.
    assert rows[str(giant.relative_to(root))].flags == {"damaged", "no_keyframe"}
    rebuilt = rows[str(part.relative_to(root)).removesuffix(".part")]
    assert rebuilt.flags == {"recovered", "rebuilt"}
    assert decode_errors(root / rebuilt.path) == ""
    assert ffprobe_packets(root / rebuilt.path) == [rebuilt.frames]
    assert (report.added, report.repaired, report.rebuilt, report.quarantined) == (2, 1, 1, 1)
    assert report.forgotten == len(bad_rows)
    assert report.symlinks == 1 and "cam-link is a symbolic link: not following it" in caplog.text
    assert report.foreign == 2
    moved = {q.path: q for q in index.quarantined()}
    assert set(moved) == {
        f"quarantine/{tkhd.relative_to(root)}.quarantined",
        f"quarantine/{part.relative_to(root)}.quarantined",
    }
    assert quarantine.count == 2  # the rebuilt .part's original counts as a move, not a loss
    assert [e["path"] for e in journal.entries] == [
        str(tkhd.relative_to(root)),
        str(part.relative_to(root)),
    ]
    assert (root / next(iter(moved))).read_bytes() == forty_byte_empty_tkhd()
    # Quarantined bytes count in the usage the quota is enforced on.
    assert index.totals()[1] == sum(r.bytes for r in rows.values()) + sum(
        q.bytes for q in moved.values()
    )
    # Foreign files are left alone, the journal untouched, nothing outside read or changed.
    assert (good.parent / "notes.txt").read_text() == "not a recording"
    assert journal_file.read_text() == '{"event": "forward_start"}\n'
    assert digest(outside) == outside_before

    # Retention, given rows naming paths outside the tree, deletes nothing outside it.
    index.add_many(_row(path) for path in bad_rows)
    enforce(index, root, RetentionPolicy(quota=0, max_age=86400, min_free=0))
    assert digest(outside) == outside_before
    assert journal_file.read_text() == '{"event": "forward_start"}\n'
    assert index.totals()[:2] == (0, 0) and index.quarantined() == []
    assert (root / "cam-link").is_symlink()
    index.close()


def _row(path: str) -> Segment:
    return Segment(path, "cam-a", T0 - 100, T0 - 90, 10, 1, "h264", 1, 1, False)


def test_an_empty_tkhd_file_does_not_stop_reconciliation_or_reindex(
    tree: Path, clip: bytes
) -> None:
    good = place(tree, "cam-a", T0, clip)
    bad = place(tree, "cam-a", T0 + 10, forty_byte_empty_tkhd())
    index = Index(tree / "index.sqlite3")

    report = reconcile(tree, index)
    index.close()

    assert report.quarantined == 1 and report.added == 1
    assert not bad.exists()
    rebuilt = rebuild_index(tree, tree / "index.sqlite3")
    assert rebuilt.added == 1 and rebuilt.quarantined == 0
    index = Index(tree / "index.sqlite3")
    assert index.paths() == {str(good.relative_to(tree))}
    assert len(index.quarantined()) == 1
    assert index.quarantined()[0].reason.startswith("unreadable: damaged movie header")
    index.close()


def test_reindex_command_quarantines_what_it_cannot_read_and_journals_it(
    tmp_path: Path, tree: Path, clip: bytes
) -> None:
    good = place(tree, "cam-a", T0, clip)
    bad = place(tree, "cam-a", T0 + 10, forty_byte_empty_tkhd())
    config = write_config(tmp_path / "gw.yaml", tree, [{"id": "cam-a", "url": "sim://cam-a"}])

    result = cli("recordings", "reindex", "--config", str(config))

    assert result.returncode == 0, result.stderr
    assert "reindexed 1 segments" in result.stdout and "1 quarantined" in result.stdout
    index = Index(tree / "index.sqlite3", readonly=True)
    assert index.paths() == {str(good.relative_to(tree))}
    index.close()
    entries = audit_entries(tree / "audit")
    assert [(e["event"], e["path"]) for e in entries if "path" in e] == [
        ("storage_quarantined", str(bad.relative_to(tree)))
    ]


def test_a_failed_reindex_leaves_the_previous_index(
    tree: Path, clip: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    place(tree, "cam-a", T0, clip)
    index = Index(tree / "index.sqlite3")
    index.add(_row("cam-a/x"))
    index.close()
    before = (tree / "index.sqlite3").read_bytes()

    def failing(*_args: object) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(recovery, "_reconcile_quarantine", failing)
    with pytest.raises(sqlite3.OperationalError):
        rebuild_index(tree, tree / "index.sqlite3")

    assert (tree / "index.sqlite3").read_bytes() == before
    assert not list(tree.glob("index.sqlite3.rebuild*"))
    index = Index(tree / "index.sqlite3")
    assert index.paths() == {"cam-a/x"}
    index.close()


def test_a_damaged_index_is_set_aside_and_rebuilt_from_the_files(tree: Path, clip: bytes) -> None:
    good = place(tree, "cam-a", T0, clip)
    (tree / "index.sqlite3").write_bytes(b"\x00garbage, not sqlite" * 512)

    with pytest.raises(IndexCorrupt):
        reconcile(tree, Index(tree / "index.sqlite3"))
    aside = set_aside(tree / "index.sqlite3")
    report = rebuild_index(tree, tree / "index.sqlite3")

    assert report.added == 1
    assert aside.read_bytes() == b"\x00garbage, not sqlite" * 512
    index = Index(tree / "index.sqlite3")
    assert index.paths() == {str(good.relative_to(tree))}
    index.close()


@pytest.mark.parametrize("fragment", [0, 2])
def test_a_part_damaged_before_its_last_fragment_is_rebuilt_and_its_original_kept(
    tree: Path, clip: bytes, fragment: int
) -> None:
    spans = fragments(clip)
    broken = damaged(clip, spans[fragment][0], 30)  # its box header destroyed
    part = place(tree, "cam-a", T0, broken, part=True)
    journal = Journal()
    index = Index(tree / "index.sqlite3")
    quarantine = Quarantine(tree, index, journal)

    row = salvage(tree, part, quarantine=quarantine)

    assert row is not None and row.flags == {"recovered", "rebuilt"}
    final = tree / row.path
    assert decode_errors(final) == ""
    assert ffprobe_packets(final) == [row.frames]
    original = tree / "quarantine" / f"{part.relative_to(tree)}.quarantined"
    assert original.read_bytes() == broken
    assert [q.path for q in index.quarantined()] == [str(original.relative_to(tree))]
    assert "damaged stretch" in journal.entries[0]["reason"]
    assert not part.exists() and not rebuild_temp_path(final).exists()
    index.close()


def test_an_unreadable_segment_is_quarantined_counted_and_evicted_first(
    tree: Path, clip: bytes
) -> None:
    older = place(tree, "cam-a", T0, clip)
    content = b"\x00\x00\x00\x18ftypisom" + bytes(5000)  # a header, then zeros
    unreadable = place(tree, "cam-a", T0 + 60, content)
    journal = Journal()
    index = Index(tree / "index.sqlite3")
    quarantine = Quarantine(tree, index, journal)

    report = reconcile(tree, index, quarantine=quarantine)

    assert report.quarantined == 1 and quarantine.count == 1 and len(journal.entries) == 1
    assert not unreadable.exists()
    (moved,) = index.quarantined()
    assert moved.camera == "cam-a" and moved.bytes == len(content)
    assert moved.start == pytest.approx(T0 + 60, abs=0.001)  # from its name
    assert index.totals()[1] == len(clip) + len(content)  # it counts in the quota
    # Over the quota, it goes before the older recording.
    evicted = enforce(index, tree, RetentionPolicy(quota=len(clip), max_age=86400, min_free=0))
    assert [(e.segment.path, e.reason) for e in evicted] == [(moved.path, "quota")]
    assert older.read_bytes() == clip
    index.close()


def test_an_unfinished_rebuild_is_completed_or_dropped_after_a_crash(
    tree: Path, clip: bytes
) -> None:
    spans = fragments(clip)
    broken = damaged(clip, spans[0][0] + 4, 30)
    # Crash after the copy was written and the original moved aside, before the rename.
    first = place(tree, "cam-a", T0, broken, part=True)
    temp = rebuild_temp_path(first.with_name(first.name.removesuffix(".part")))
    repair(first, rebuild_to=temp)
    Quarantine(tree, None).move(first, "damaged")
    # Crash before the original was moved: the copy is redone from the original.
    second = place(tree, "cam-a", T0 + 10, broken, part=True)
    stale = rebuild_temp_path(second.with_name(second.name.removesuffix(".part")))
    stale.write_bytes(b"half a copy")
    index = Index(tree / "index.sqlite3")

    report = reconcile(tree, index)

    finals = sorted(r.path for r in index.segments())
    assert finals == [
        str(first.relative_to(tree)).removesuffix(".part"),
        str(second.relative_to(tree)).removesuffix(".part"),
    ]
    assert report.rebuilt == 2 and not temp.exists() and not stale.exists()
    for path in finals:
        assert decode_errors(tree / path) == ""
    # The quarantine holds both originals, indexed (the first one found on disk).
    assert len(index.quarantined()) == 2
    index.close()


def test_misplaced_and_linked_recordings_are_never_indexed_or_followed(
    tmp_path: Path, tree: Path, clip: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    target = outside / "target.mp4"
    target.write_bytes(clip)
    good = place(tree, "cam-a", T0, clip)
    misplaced = good.parent / final_name(tree, "cam-b", T0)  # cam-b's file in cam-a's folder
    misplaced.write_bytes(clip)
    link = good.parent / final_name(tree, "cam-a", T0 + 5)
    link.symlink_to(target)
    linked_day = tree / "cam-a" / "2020-01-01"
    linked_day.symlink_to(outside)
    linked_camera = tree / "cam-c"
    linked_camera.symlink_to(tmp_path / "elsewhere")
    elsewhere = place(tmp_path / "elsewhere", "cam-c", T0, clip)
    elsewhere_part = place(tmp_path / "elsewhere", "cam-c", T0 + 60, clip[:9000], part=True)
    index = Index(tree / "index.sqlite3")
    caplog.set_level(logging.INFO, logger="gateway.storage")

    report = reconcile(tree, index)

    assert index.paths() == {str(good.relative_to(tree))}
    assert elsewhere.read_bytes() == clip and elsewhere_part.read_bytes() == clip[:9000]
    assert f"{linked_camera} is a symbolic link: not following it" in caplog.text
    assert report.symlinks == 3 and report.quarantined == 1
    assert index.quarantined()[0].reason.startswith("misplaced")
    assert link.is_symlink() and target.read_bytes() == clip
    assert f"{link} is a symbolic link: not following it" in caplog.text
    assert f"{linked_day} is a symbolic link: not following it" in caplog.text
    index.close()


def final_name(root: Path, camera: str, start: float) -> str:
    return segment_path(root, camera, start).name.removesuffix(".part")


def test_salvage_never_replaces_a_finished_segment_of_the_same_name(
    tree: Path, clip: bytes
) -> None:
    final = place(tree, "cam-a", T0, clip)
    part = place(tree, "cam-a", T0, clip[: fragments(clip)[3][1] + 100], part=True)

    row = salvage(tree, part)

    assert row is not None and row.path != str(final.relative_to(tree))
    assert final.read_bytes() == clip
    assert abs(row.start - (T0 + 0.001)) < 0.002  # the next free millisecond
    assert decode_errors(tree / row.path) == ""


def test_namesakes_in_the_quarantine_are_never_overwritten(tree: Path, clip: bytes) -> None:
    index = Index(tree / "index.sqlite3")
    quarantine = Quarantine(tree, index)
    moved = []
    for content in (b"first", b"second", b"third"):
        path = place(tree, "cam-a", T0, content)
        moved.append(quarantine.move(path, "unreadable"))

    name = final_name(tree, "cam-a", T0)
    assert [p.name if p else None for p in moved] == [
        f"{name}.quarantined",
        f"{name}.1.quarantined",
        f"{name}.2.quarantined",
    ]
    assert [p.read_bytes() for p in moved if p] == [b"first", b"second", b"third"]
    assert quarantine.count == 3 and index.quarantine_totals() == (3, 16)
    index.close()


def test_files_found_in_the_quarantine_are_indexed_and_bounded(tree: Path, clip: bytes) -> None:
    stray = place(tree / "quarantine", "cam-a", T0, b"\xff" * 1000)
    stray = stray.rename(stray.with_name(stray.name + ".quarantined"))
    foreign = tree / "quarantine" / "notes.txt"
    foreign.write_text("left alone")
    index = Index(tree / "index.sqlite3")

    report = reconcile(tree, index)

    [found] = index.quarantined()
    assert (found.path, found.reason) == (str(stray.relative_to(tree)), "found in the quarantine")
    assert found.start == pytest.approx(T0, abs=0.001)
    assert report.foreign == 1
    evicted = enforce(index, tree, RetentionPolicy(quota=10, max_age=86400, min_free=0))
    assert [e.segment.path for e in evicted] == [str(stray.relative_to(tree))]
    assert not stray.exists() and foreign.read_text() == "left alone"
    index.close()


def test_a_linked_quarantine_folder_is_not_followed(
    tmp_path: Path, tree: Path, clip: bytes
) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (tree / "quarantine").symlink_to(outside)
    bad = place(tree, "cam-a", T0, forty_byte_empty_tkhd())
    index = Index(tree / "index.sqlite3")

    report = reconcile(tree, index)

    assert report.quarantined == 0 and report.symlinks == 1
    assert bad.exists() and list(outside.iterdir()) == []
    index.close()
