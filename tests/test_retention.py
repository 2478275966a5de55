"""Retention on a real index and real files; index recovery from real segment files."""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from gateway.media.fmp4 import scan
from gateway.media.normalize import Normalizer
from gateway.recorder.segment import SegmentWriter
from gateway.source.sim import SimSource
from gateway.storage.index import GAP_TOLERANCE, Index, QuarantinedFile, gaps
from gateway.storage.naming import segment_path
from gateway.storage.record import Segment
from gateway.storage.recovery import rebuild_index, reconcile
from gateway.storage.retention import Eviction, RetentionPolicy, enforce, free_bytes

DAY = 86400.0
T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z
UNLIMITED = 10**18


def make_segment(
    root: Path, camera: str, start: float, size: int, duration: float = 10.0
) -> Segment:
    """A file of ``size`` bytes where the recorder would put it, and its index row."""
    path = segment_path(root, camera, start)
    final = path.with_name(path.name.removesuffix(".part"))
    final.parent.mkdir(parents=True, exist_ok=True)
    final.write_bytes(b"\0" * size)
    return Segment(
        path=str(final.relative_to(root)),
        camera=camera,
        start=start,
        end=start + duration,
        bytes=size,
        frames=int(duration * 25),
        codec="h264",
        width=640,
        height=360,
        has_audio=False,
    )


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "storage"
    path.mkdir()
    return path


@pytest.fixture
def index(root: Path) -> Index:
    return Index(root / "index.sqlite3")


def fill(root: Path, index: Index, specs: list[tuple[str, float, int]]) -> list[Segment]:
    rows = [make_segment(root, camera, start, size) for camera, start, size in specs]
    index.add_many(rows)
    return rows


def policy(
    *, quota: int = UNLIMITED, max_age: float = 30 * DAY, min_free: int = 0
) -> RetentionPolicy:
    return RetentionPolicy(quota=quota, max_age=max_age, min_free=min_free)


def test_quota_evicts_oldest_first_across_cameras_and_stops_in_time(
    root: Path, index: Index
) -> None:
    # Three cameras, interleaved in time, 1000 bytes each.
    specs = [(f"cam{i % 3}", T0 + 10 * i, 1000) for i in range(10)]
    rows = fill(root, index, specs)

    evicted = enforce(index, root, policy(quota=5500), writing_bytes=500, now=T0 + 200)

    # 10 000 + 500 being written: five must go to get to 5500, and no more.
    assert [e.segment for e in evicted] == rows[:5]
    assert {e.reason for e in evicted} == {"quota"}
    count, total, oldest = index.totals()
    assert (count, total, oldest) == (5, 5000, rows[5].start)
    for row in rows[:5]:
        assert not (root / row.path).exists()
    for row in rows[5:]:
        assert (root / row.path).stat().st_size == 1000
    assert index.paths() == {r.path for r in rows[5:]}


def test_quota_already_met_evicts_nothing(root: Path, index: Index) -> None:
    rows = fill(root, index, [("cam0", T0 + i, 1000) for i in range(4)])

    assert enforce(index, root, policy(quota=4000), now=T0 + 10) == []
    assert index.paths() == {r.path for r in rows}


def test_quota_counts_the_segment_being_written(root: Path, index: Index) -> None:
    rows = fill(root, index, [("cam0", T0 + i, 1000) for i in range(4)])

    evicted = enforce(index, root, policy(quota=4000), writing_bytes=1, now=T0 + 10)

    assert [e.segment for e in evicted] == rows[:1]


def test_max_age_evicts_by_segment_start(root: Path, index: Index) -> None:
    now = T0 + 40 * DAY
    ages_days = [35, 31, 30.5, 29.9, 10, 0.1]
    rows = fill(root, index, [("cam0", now - a * DAY, 100) for a in ages_days])

    evicted = enforce(index, root, policy(max_age=30 * DAY), now=now)

    assert [e.segment for e in evicted] == rows[:3]
    assert {e.reason for e in evicted} == {"max_age"}
    assert index.paths() == {r.path for r in rows[3:]}
    assert all(not (root / r.path).exists() for r in rows[:3])


def test_each_eviction_names_the_limit_that_required_it(root: Path, index: Index) -> None:
    now = T0 + 40 * DAY
    old = fill(root, index, [("cam0", now - 32 * DAY, 1000), ("cam1", now - 31 * DAY, 1000)])
    recent = fill(root, index, [(f"cam{i % 2}", now - 100 + i, 1000) for i in range(4)])
    reported: list[Eviction] = []

    evicted = enforce(
        index, root, policy(quota=3000, max_age=30 * DAY), now=now, on_evict=reported.append
    )

    assert [(e.segment, e.reason) for e in evicted] == [
        (old[0], "max_age"),
        (old[1], "max_age"),
        (recent[0], "quota"),
    ]
    assert reported == evicted


def test_min_free_evicts_everything_then_stops_cleanly(root: Path, index: Index) -> None:
    rows = fill(root, index, [(f"cam{i % 2}", T0 + i * 10, 4096) for i in range(6)])
    unreachable = free_bytes(root) + 10**15  # more free space than this disk can ever have

    evicted = enforce(index, root, policy(min_free=unreachable), now=T0 + 100)

    assert [e.segment for e in evicted] == rows
    assert {e.reason for e in evicted} == {"min_free"}
    assert index.totals() == (0, 0, None)
    assert not list(root.rglob("*.mp4"))
    # Nothing left to delete: a second pass is a no-op, not an error or a loop.
    assert enforce(index, root, policy(min_free=unreachable), now=T0 + 100) == []


def test_emptied_day_folders_are_removed(root: Path, index: Index) -> None:
    day1 = [("cam0", T0 + i, 1000) for i in range(3)]
    day2 = [("cam0", T0 + DAY + i, 1000) for i in range(3)]
    rows = fill(root, index, day1 + day2)
    day1_dir = (root / rows[0].path).parent
    day2_dir = (root / rows[3].path).parent
    assert day1_dir != day2_dir

    enforce(index, root, policy(quota=2000), now=T0 + DAY + 10)

    assert not day1_dir.exists()
    assert day2_dir.is_dir()
    assert sorted(p.name for p in day2_dir.iterdir()) == [Path(r.path).name for r in rows[4:]]


def test_missing_file_is_still_evicted_from_the_index(root: Path, index: Index) -> None:
    rows = fill(root, index, [("cam0", T0 + i, 1000) for i in range(3)])
    (root / rows[0].path).unlink()  # deleted by hand

    evicted = enforce(index, root, policy(quota=2000), now=T0 + 10)

    assert [e.segment for e in evicted] == rows[:1]
    assert index.paths() == {r.path for r in rows[1:]}


def test_a_flooding_camera_never_takes_another_below_its_fair_share(
    root: Path, index: Index
) -> None:
    # cam-small recorded first (oldest) and little; cam-flood then wrote ten times as much.
    small = fill(root, index, [("small", T0 + i, 1000) for i in range(3)])
    flood = fill(root, index, [("flood", T0 + 100 + i, 3000) for i in range(10)])
    reported: list[Eviction] = []

    # 33 000 bytes held for a 20 000 quota: each camera's share is 10 000.
    evicted = enforce(index, root, policy(quota=20_000), now=T0 + 200, on_evict=reported.append)

    assert [e.segment for e in evicted] == flood[:5]  # the flood's oldest, not the older small
    assert {(e.reason, e.camera) for e in evicted} == {("quota", "flood")}
    assert reported == evicted
    assert index.camera_bytes() == {"small": 3000, "flood": 15_000}
    assert all((root / r.path).exists() for r in small)


def test_only_when_no_camera_is_above_its_share_the_oldest_goes(root: Path, index: Index) -> None:
    rows = fill(root, index, [(f"cam{i % 2}", T0 + i, 1000) for i in range(8)])

    evicted = enforce(index, root, policy(quota=5000), now=T0 + 100)

    # Both cameras hold 4000, above their 2500 share: oldest first, alternating.
    assert [e.segment for e in evicted] == rows[:3]


def test_a_camera_being_written_counts_for_the_shares(root: Path, index: Index) -> None:
    old = fill(root, index, [("a", T0 + i, 2000) for i in range(4)])
    newer = fill(root, index, [("b", T0 + 50 + i, 2000) for i in range(2)])

    # a: 8000, b: 4000 indexed + 6000 being written, c: a new camera writing 1000.
    evicted = enforce(
        index, root, policy(quota=12_000), writing={"b": 6000, "c": 1000}, now=T0 + 100
    )

    # 19 000 for 12 000: a share is 4000. a goes down to its share, oldest first; b, with
    # 6000 being written, is still above its share, so its finished segments go too; c,
    # below its share, is not touched.
    assert [e.segment for e in evicted] == [*old[:2], *newer]
    assert index.camera_bytes() == {"a": 4000}


def test_the_old_writing_bytes_keyword_still_counts_in_the_quota(root: Path, index: Index) -> None:
    rows = fill(root, index, [("cam0", T0 + i, 1000) for i in range(3)])

    evicted = enforce(index, root, policy(quota=3000), writing_bytes=1000, now=T0 + 10)

    assert [e.segment for e in evicted] == rows[:1]


def quarantine_file(root: Path, index: Index, start: float, size: int) -> QuarantinedFile:
    path = segment_path(root / "quarantine", "cam0", start)
    path = path.with_name(path.name + ".quarantined")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\xff" * size)
    item = QuarantinedFile(str(path.relative_to(root)), "cam0", start, size, "unreadable", T0)
    index.add_quarantined(item)
    return item


def test_quarantined_files_go_first_and_always_after_max_age(root: Path, index: Index) -> None:
    now = T0 + 40 * DAY
    rows = fill(root, index, [("cam0", now - 100 + i, 1000) for i in range(3)])
    expired = quarantine_file(root, index, now - 31 * DAY, 10)
    recent = quarantine_file(root, index, now - 50, 500)

    # Within the quota: only the file older than max_age goes.
    evicted = enforce(index, root, policy(quota=10_000, max_age=30 * DAY), now=now)
    assert [(e.segment, e.reason, e.quarantined) for e in evicted] == [(expired, "max_age", True)]
    assert not (root / expired.path).exists()
    assert index.totals()[1] == 3500

    # Over the quota: the quarantined file goes before any recording, though it is newer.
    evicted = enforce(index, root, policy(quota=3000, max_age=30 * DAY), now=now)
    assert [(e.segment, e.reason) for e in evicted] == [(recent, "quota")]
    assert not (root / recent.path).exists()
    assert not (root / "quarantine" / "cam0").exists()  # emptied folders go too
    assert index.paths() == {r.path for r in rows}
    assert index.quarantined() == []


@pytest.mark.parametrize(
    "bad_path",
    [
        "../outside/cam0_20231114T221320.000Z.mp4",
        "audit/forward-sessions.jsonl",
        "/etc/passwd",
        "cam0/2023-11-14/cam1_20231114T221320.000Z.mp4",  # another camera's name
        "cam0/2023-11-15/cam0_20231114T221320.000Z.mp4",  # another day's folder
        "cam0/2023-11-14/cam0_20231114T221320.000Z.mp4.part",
        "cam0/2023-11-14/../../audit/x",
        "index.sqlite3",
    ],
)
def test_rows_naming_other_paths_are_dropped_and_their_paths_untouched(
    tmp_path: Path, root: Path, index: Index, bad_path: str, caplog: pytest.LogCaptureFixture
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "cam0_20231114T221320.000Z.mp4"
    victim.write_bytes(b"x" * 10)
    (root / "audit").mkdir()
    journal = root / "audit" / "forward-sessions.jsonl"
    journal.write_text("{}\n")
    (root / "index.sqlite3-not").write_text("")
    bad = replace(make_segment(root, "cam0", T0 - 10, 10), path=bad_path)
    index.add(bad)
    good = fill(root, index, [("cam0", T0 + i, 1000) for i in range(3)])
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file() and "index" not in p.name}

    evicted = enforce(index, root, policy(quota=2000), now=T0 + 10)

    assert [e.segment for e in evicted] == good[:1]
    assert bad_path not in index.paths()
    assert "index row dropped, its path not touched" in caplog.text
    assert victim.read_bytes() == b"x" * 10 and journal.read_text() == "{}\n"
    for path, content in before.items():
        if path != root / good[0].path:
            assert path.read_bytes() == content, path


def test_a_link_swapped_in_for_a_day_folder_is_not_followed(
    tmp_path: Path, root: Path, index: Index
) -> None:
    rows = fill(root, index, [("cam0", T0 + i, 1000) for i in range(3)])
    day = (root / rows[0].path).parent
    outside = tmp_path / "elsewhere"
    day.rename(outside)  # the folder moved away, and a link to it put in its place
    day.symlink_to(outside)

    evicted = enforce(index, root, policy(quota=0), now=T0 + 10)

    assert evicted == []
    assert index.paths() == set()  # the rows are dropped: retention does not stop on them
    assert sorted(p.name for p in outside.iterdir()) == sorted(Path(r.path).name for r in rows)


def row(camera: str, start: float, end: float) -> Segment:
    return Segment(
        path=f"{camera}/{start}.mp4",
        camera=camera,
        start=start,
        end=end,
        bytes=1,
        frames=1,
        codec="h264",
        width=1,
        height=1,
        has_audio=False,
    )


def test_gaps_are_holes_longer_than_the_tolerance_per_camera() -> None:
    segments = [
        row("a", 0, 10),
        row("a", 10 + GAP_TOLERANCE, 20),  # within tolerance: continuous
        row("a", 25, 30),  # a 5 s hole
        row("b", 40, 50),  # another camera later: not a hole of camera a
        row("b", 50.2, 60),
        row("b", 100, 110),  # a 40 s hole
    ]

    found = gaps(list(reversed(segments)))  # order of the input does not matter

    assert [(g.camera, g.start, g.end) for g in found] == [("a", 20, 25), ("b", 60, 100)]
    assert [g.duration for g in found] == [5, 40]


def test_no_gaps_between_overlapping_or_single_segments() -> None:
    assert gaps([]) == []
    assert gaps([row("a", 0, 10)]) == []
    assert gaps([row("a", 0, 10), row("a", 8, 20), row("b", 30, 40)]) == []


# -- recovery with real segment files ---------------------------------------------------------


@dataclass(frozen=True)
class Storage:
    root: Path
    infos: list[Segment]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Storage:
    """Two real segments of about one second each, cut at keyframes like the recorder does."""
    root = tmp_path_factory.mktemp("recorded")
    source = SimSource("sim://t?fps=25&gop=1&width=160&height=120", camera_id="cam1")
    tracks = source.open()
    normalizer = Normalizer(tracks, camera_id="cam1")
    infos: list[Segment] = []
    writer: SegmentWriter | None = None
    try:
        while len(infos) < 2:
            for packet in filter(None, [normalizer.push(source.read())]):
                if packet.keyframe:
                    if writer is not None:
                        infos.append(writer.close())
                        writer = None
                    if len(infos) < 2:
                        start = time.time()
                        path = segment_path(root, "cam1", start)
                        writer = SegmentWriter(path, tracks, camera_id="cam1", start=start)
                if writer is not None:
                    writer.write(packet)
    finally:
        source.close()
    return Storage(root, infos)


def as_row(info: Segment) -> Segment:
    """The segment as an index written at close time by an older version holds it."""
    return Segment(
        path=info.path,
        camera=info.camera,
        start=info.start,
        end=info.end,
        bytes=info.bytes,
        frames=info.frames,
        codec=info.codec,
        width=info.width,
        height=info.height,
        has_audio=info.has_audio,
    )


@pytest.fixture
def storage(recorded: Storage, tmp_path: Path) -> Storage:
    """A private copy of the recorded storage, with an index as written at close time."""
    root = tmp_path / "storage"
    shutil.copytree(recorded.root, root)
    return Storage(root, recorded.infos)


def test_reindex_from_files_alone_matches_the_index_written_at_close(storage: Storage) -> None:
    root = storage.root
    closed = Index(root / "closed.sqlite3")
    closed.add_many(as_row(i) for i in storage.infos)
    stale = Index(root / "rebuilt.sqlite3")
    stale.add(as_row(storage.infos[0]))  # stale content is replaced, not merged
    stale.add(row("gone", T0, T0 + 10))  # a row whose file no longer exists
    stale.close()

    report = rebuild_index(root, root / "rebuilt.sqlite3")
    rebuilt = Index(root / "rebuilt.sqlite3")

    expected, got = closed.segments(), rebuilt.segments()
    assert report.added == 2
    assert [r.path for r in got] == [r.path for r in expected]
    for want, have in zip(expected, got, strict=True):
        assert abs(have.start - want.start) <= 0.001
        assert have.frames == want.frames > 0
        assert have.bytes == want.bytes == (root / have.path).stat().st_size
        assert abs(have.end - want.end) <= 0.001 + 1 / 25
        assert (have.codec, have.width, have.height) == ("h264", 160, 120)
        assert have.has_audio is False


def test_leftover_part_file_is_repaired_and_indexed(storage: Storage) -> None:
    root = storage.root
    index = Index(root / "index.sqlite3")
    index.add_many(as_row(i) for i in storage.infos)
    # A crash in the middle of writing the third segment: a .part cut mid-fragment.
    source = storage.infos[1].resolve(root)
    data = source.read_bytes()
    part = segment_path(root, "cam1", storage.infos[1].start + 5.0)
    part.parent.mkdir(parents=True, exist_ok=True)
    part.write_bytes(data[: len(data) * 3 // 4])

    report = reconcile(root, index)

    assert report.repaired == 1
    assert report.added == 0 and report.forgotten == 0
    assert not part.exists()
    final = part.with_name(part.name.removesuffix(".part"))
    facts = scan(final)
    assert 0 < facts.frames < storage.infos[1].frames
    rows = {r.path: r for r in index.segments()}
    assert len(rows) == 3
    added = rows[str(final.relative_to(root))]
    assert added.frames == facts.frames
    assert added.bytes == final.stat().st_size < len(data) * 3 // 4


def test_part_files_without_media_are_removed_and_garbage_is_quarantined(
    storage: Storage, caplog: pytest.LogCaptureFixture
) -> None:
    root = storage.root
    index = Index(root / "index.sqlite3")
    index.add_many(as_row(i) for i in storage.infos)
    empty = segment_path(root, "cam1", storage.infos[1].start + 5.0)
    garbage = segment_path(root, "cam1", storage.infos[1].start + 10.0)
    empty.parent.mkdir(parents=True, exist_ok=True)
    garbage.parent.mkdir(parents=True, exist_ok=True)
    empty.write_bytes(b"")
    garbage.write_bytes(b"\x00\x00\x00\x10junkjunkjunk" * 50)
    moov_only = segment_path(root, "cam1", storage.infos[1].start + 15.0)
    data = storage.infos[1].resolve(root).read_bytes()
    moov_only.parent.mkdir(parents=True, exist_ok=True)
    moov_only.write_bytes(data[: data.index(b"moof") - 4])  # headers, but not one fragment
    caplog.set_level(logging.INFO, logger="gateway.storage")

    report = reconcile(root, index)

    # Nothing past the movie header: no image is lost, the file goes (with a log line).
    assert report.discarded == 2
    for path in (empty, moov_only):
        assert not path.exists()
        assert not path.with_name(path.name.removesuffix(".part")).exists()
        assert f"removing interrupted segment {path.relative_to(root)}" in caplog.text
    # Bytes that are not a segment may still be someone's images: kept aside, not deleted.
    assert report.quarantined == 1 and report.repaired == 0
    assert not garbage.exists()
    moved = root / "quarantine" / f"{garbage.relative_to(root)}.quarantined"
    assert moved.read_bytes() == b"\x00\x00\x00\x10junkjunkjunk" * 50
    assert index.paths() == {i.path for i in storage.infos}
    assert [q.path for q in index.quarantined()] == [str(moved.relative_to(root))]


def test_rows_of_deleted_files_are_forgotten(storage: Storage) -> None:
    root = storage.root
    index = Index(root / "index.sqlite3")
    index.add_many(as_row(i) for i in storage.infos)
    storage.infos[0].resolve(root).unlink()

    report = reconcile(root, index)

    assert report.forgotten == 1
    assert report.added == 0
    assert index.paths() == {storage.infos[1].path}


def test_unindexed_finished_file_is_added(storage: Storage) -> None:
    root = storage.root
    index = Index(root / "index.sqlite3")
    index.add(as_row(storage.infos[0]))  # the daemon died before indexing the second

    report = reconcile(root, index)

    assert report.added == 1
    assert index.paths() == {i.path for i in storage.infos}


def test_part_file_with_a_foreign_name_is_left_alone(storage: Storage) -> None:
    root = storage.root
    index = Index(root / "index.sqlite3")
    index.add_many(as_row(i) for i in storage.infos)
    stray = storage.infos[0].resolve(root).with_name("notes.mp4.part")  # not one of our names
    shutil.copyfile(storage.infos[0].resolve(root), stray)

    report = reconcile(root, index)

    assert report.added == 0 and report.repaired == 0 and report.quarantined == 0
    assert report.foreign == 1
    assert "-1" not in report.summary()
    assert stray.read_bytes() == storage.infos[0].resolve(root).read_bytes()
    assert index.paths() == {i.path for i in storage.infos}
