"""Ring buffer limits held by the running daemon: quota, max_age and min_free, oldest first."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import pytest
from helpers import StartGateway, tmpfs, write_config


def _sim(name: str, bitrate: int = 400) -> dict[str, str]:
    return {"id": name, "url": f"sim://{name}?width=320&height=240&fps=10&gop=1&bitrate={bitrate}"}


def _disk_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*.mp4*") if p.is_file())


def _start(path: Path) -> float:
    stamp = path.name.split("_", 1)[1].split("Z", 1)[0]
    return datetime.strptime(stamp + "+0000", "%Y%m%dT%H%M%S.%f%z").timestamp()


def test_quota_is_never_exceeded_by_more_than_one_segment_and_each_camera_loses_its_oldest(
    tmp_path: Path, gateway: StartGateway
) -> None:
    root = tmp_path / "rec"
    quota = 400_000
    config = write_config(
        tmp_path / "gw.yaml",
        root,
        [_sim("east"), _sim("west")],
        storage={"quota": quota, "segment_duration": "1s", "min_free": 0},
    )
    gw = gateway(config)
    gw.wait_log("camera west: online", 15)
    biggest = 0
    peak = 0
    deadline = time.monotonic() + 14
    while time.monotonic() < deadline:
        files = [p for p in root.rglob("*.mp4") if p.is_file()]
        if files:
            biggest = max(biggest, *(p.stat().st_size for p in files))
        peak = max(peak, _disk_bytes(root))
        time.sleep(0.1)
    gw.wait_log("quota", 5)
    assert gw.stop() == 0
    assert peak <= quota + biggest, f"peak {peak} B above quota {quota} B + one segment {biggest} B"
    assert _disk_bytes(root) <= quota
    evicted = [line for line in gw.log.splitlines() if "evicted" in line]
    assert evicted and all("quota" in line for line in evicted)
    # Oldest first within each camera (which camera goes first is the fair share's business):
    # everything left of a camera is newer than everything evicted of it.
    names = [Path(line.split("evicted ", 1)[1].split(" ", 1)[0]) for line in evicted]
    for camera in ("east", "west"):
        kept = sorted(_start(p) for p in (root / camera).rglob("*.mp4"))
        gone = [_start(n) for n in names if n.parts[0] == camera]
        assert not gone or not kept or max(gone) <= kept[0], camera
    assert {Path(n).parts[0] for n in names} == {"east", "west"}


def test_segments_older_than_max_age_are_deleted(tmp_path: Path, gateway: StartGateway) -> None:
    root = tmp_path / "rec"
    config = write_config(
        tmp_path / "gw.yaml",
        root,
        [_sim("yard")],
        storage={"max_age": "3s", "segment_duration": "1s", "min_free": 0},
    )
    gw = gateway(config)
    gw.wait_log("camera yard: online", 15)
    gw.wait_log("max_age", 15)
    time.sleep(3)
    now = time.time()
    starts = [_start(p) for p in root.rglob("*.mp4")]
    assert gw.stop() == 0
    assert starts, "recent segments are kept"
    # Retention runs every second; a segment may outlive max_age by that second and its own length.
    assert min(starts) >= now - 3 - 2.5, f"oldest segment is {now - min(starts):.1f} s old"


@pytest.mark.root
def test_min_free_is_kept_on_a_small_filesystem(tmp_path: Path, gateway: StartGateway) -> None:
    with tmpfs(tmp_path / "small", "6m") as root:
        config = write_config(
            tmp_path / "gw.yaml",
            root,
            [_sim("hall", bitrate=1500)],
            storage={"quota": "1GiB", "min_free": "4MB", "segment_duration": "1s"},
        )
        gw = gateway(config)
        gw.wait_log("min_free", 30)
        assert "is larger than the filesystem" in gw.log, "the oversized quota is warned about"
        import os

        lowest = None
        for _ in range(30):
            stats = os.statvfs(root)
            free = stats.f_bavail * stats.f_frsize
            lowest = free if lowest is None else min(lowest, free)
            time.sleep(0.1)
        assert gw.stop() == 0
        segment = max(p.stat().st_size for p in root.rglob("*.mp4"))
        assert lowest is not None and lowest >= 4_000_000 - 2 * segment
        assert "recording stopped" not in gw.log, "min_free eviction keeps recording going"
