"""A camera is untrusted input: hostile cameras next to good ones, one daemon.

Every misbehaviour a camera's cable can carry (fragments that never end, data on a channel never
set up, an endless line, a reply announcing 1.5 GB, an endless header, garbage RTP) is served by
the hostile test camera (tests/support/hostile_camera.py) while two good GStreamer cameras are
recorded. For every mode: the good cameras record with no gap over 2 s, the daemon is never
restarted, its own memory stays bounded, and the bad camera is reported within 5 s in the
status, over MQTT and in the metrics.
"""

from __future__ import annotations

import itertools
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from helpers import (
    Broker,
    MqttWatcher,
    NotifySocket,
    StartCamera,
    StartGateway,
    decode_errors,
    metric,
    rss_bytes,
    wait_until,
    write_config,
)
from hostile import StartHostile

pytestmark = pytest.mark.camera

SITE = "res-0042"
P = f"camera-gateway/{SITE}"
GOOD_FIRST = 3.0
"""Seconds of good pictures before the misbehaviour: a camera that turns bad once it is online
is the one that used to wedge its thread (a camera bad from the start never gets past probing)."""
HOSTILE: dict[str, dict[str, Any]] = {
    # mode: how it is served (rates modest: the box runs cameras, centre and daemon at once)
    "fua-endless": {"rate": 2_000_000, "good_first": GOOD_FIRST},
    "unknown-channel": {"rate": 300_000, "good_first": GOOD_FIRST},
    "endless-line": {"rate": 300_000, "good_first": GOOD_FIRST},
    "trickle": {"good_first": GOOD_FIRST},
    "huge-describe": {"rate": 0},
    "endless-header": {"rate": 300_000},
    "garbage-rtp": {"rate": 300_000},
}
BAD_STATES = ("stalled", "offline", "error")


def _wall(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _gaps(listing: dict[str, Any], camera: str) -> list[float]:
    return [g["duration"] for g in listing["gaps"] if g["camera"] == camera]


def test_hostile_cameras_cost_the_good_ones_nothing(
    tmp_path: Path,
    cameras: StartCamera,
    hostile: StartHostile,
    gateway: StartGateway,
    broker: Broker,
) -> None:
    good = cameras(["/a:fps=25:gop=25", "/b:fps=25:gop=25"])
    hostiles = {mode: hostile(mode, **serve) for mode, serve in HOSTILE.items()}
    ids = {mode: mode for mode in HOSTILE}
    config = write_config(
        tmp_path / "gw.yaml",
        tmp_path / "rec",
        [
            {"id": "good-a", "url": good.url("/a")},
            {"id": "good-b", "url": good.url("/b")},
            *({"id": ids[mode], "url": camera.url()} for mode, camera in hostiles.items()),
        ],
        storage={"segment_duration": "2s"},
        site_id=SITE,
        mqtt={
            "host": "127.0.0.1",
            "port": broker.port,
            "username": "gateway",
            "password": "gw-secret",
            "status_interval": "2s",
        },
    )
    notify = NotifySocket(tmp_path / "notify.sock")
    watcher = MqttWatcher(broker.port, "watcher", "w-secret", f"{P}/#")
    try:
        env = {"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "4000000"}
        gw = gateway(config, env=env)
        assert gw.proc is not None
        started = time.monotonic()
        wait_until(lambda: len(gw.segments("good-a")) >= 1, 20, "the good cameras recorded")
        # Per mode, how long the status took to say something is wrong: for a camera that turns
        # bad once online, from its last picture; for one bad from the start, from its worker's
        # start.
        worker_seen: dict[str, float] = {}
        reported: dict[str, float] = {}
        supervisor_rss: list[int] = []
        worker_rss: dict[str, int] = {}
        while time.monotonic() - started < 30:
            supervisor_rss.append(rss_bytes(gw.proc.pid))
            status = gw.status()
            now = time.time()
            for mode, camera_id in ids.items():
                camera = status[camera_id]
                if camera["worker"]["pid"]:
                    worker_seen.setdefault(mode, now)
                bad = camera["state"] in BAD_STATES and camera["error"]
                if mode in reported or not bad or mode not in worker_seen:
                    pass
                elif "good_first" in HOSTILE[mode]:
                    if camera["last_frame"] is not None:
                        reported[mode] = now - _wall(camera["last_frame"])
                else:
                    reported[mode] = now - worker_seen[mode]
                worker_rss[camera_id] = max(
                    worker_rss.get(camera_id, 0), camera["worker"]["resident_bytes"]
                )
            time.sleep(0.2)
        assert gw.proc.poll() is None, "the daemon never stopped"
        metrics = gw.metrics()
        mqtt = {
            camera_id: watcher.json(f"{P}/cameras/{camera_id}/status") for camera_id in ids.values()
        }
        pings = notify.times("WATCHDOG")
        assert gw.stop() == 0

        print()
        for mode, camera_id in ids.items():
            camera = status[camera_id]
            print(
                f"{mode:>16}: reported {reported.get(mode, float('nan')):.1f} s after going bad, "
                f"{camera['state']} ({camera['error']}); worker restarts "
                f"{camera['worker']['restarts']}, its peak RSS "
                f"{worker_rss[camera_id] / 2**20:.0f} MiB"
            )
        low, high = min(supervisor_rss) / 2**20, max(supervisor_rss) / 2**20
        print(f"supervisor RSS {low:.0f}–{high:.0f} MiB")

        for mode in HOSTILE:
            assert reported.get(mode, 99.0) <= 5.0, f"{mode}: not reported within 5 s"
            camera_id = ids[mode]
            assert mqtt[camera_id]["state"] in BAD_STATES, (mode, mqtt[camera_id])
            assert mqtt[camera_id]["error"], (mode, mqtt[camera_id])
            assert metric(metrics, f'camera_gateway_camera_up{{camera="{camera_id}"}}') == 0
            assert worker_rss[camera_id] < 512 * 2**20, f"{mode}: worker over its memory cap"
        listing = gw.listing()
        for camera_id in ("good-a", "good-b"):
            assert max(_gaps(listing, camera_id), default=0.0) <= 2.0, (camera_id, listing["gaps"])
            assert metric(metrics, f'camera_gateway_camera_up{{camera="{camera_id}"}}') == 1
        assert max(supervisor_rss) - min(supervisor_rss) < 64 * 2**20, "supervisor memory grew"
        assert max(b - a for a, b in itertools.pairwise(pings)) < 4.0, (
            "the daemon stayed healthy for systemd the whole time"
        )
    finally:
        watcher.close()
        notify.close()


def test_a_flooding_camera_cannot_evict_the_others(
    tmp_path: Path, cameras: StartCamera, hostile: StartHostile, gateway: StartGateway
) -> None:
    """Against a shared 20 MB quota, a camera sending 3 MB/s of (valid) video is evicted alone:
    the good cameras stay under their fair share and keep every segment."""
    good = cameras(["/a:fps=25:gop=25", "/b:fps=25:gop=25"])
    flood = hostile("flood", rate=3_000_000)
    config = write_config(
        tmp_path / "gw.yaml",
        tmp_path / "rec",
        [
            {"id": "good-a", "url": good.url("/a")},
            {"id": "good-b", "url": good.url("/b")},
            {"id": "flood", "url": flood.url()},
        ],
        storage={"quota": "20MB", "segment_duration": "2s", "min_free": 0},
    )
    gw = gateway(config)
    wait_until(lambda: "evicted flood/" in gw.log, 40, "the flood evicted")
    first = {camera: gw.segments(camera)[0] for camera in ("good-a", "good-b")}
    time.sleep(20)
    used = metric(gw.metrics(), "camera_gateway_storage_used_bytes")
    assert gw.stop() == 0
    evicted = [line for line in gw.log.splitlines() if " evicted " in line]
    assert evicted and all(" evicted flood/" in line for line in evicted), evicted[:3]
    for camera, path in first.items():
        assert path.exists(), f"{camera} lost its first segment to the flood"
    listing = gw.listing()
    for camera in ("good-a", "good-b"):
        assert max(_gaps(listing, camera), default=0.0) <= 2.0, camera
    flood_sizes = [s["bytes"] for s in listing["segments"] if s["camera"] == "flood"]
    assert used <= 20_000_000 + max(flood_sizes), f"{used} bytes used against a 20 MB quota"
    print(f"\n{len(evicted)} evictions, all of the flood; {used / 1e6:.1f} MB used of 20 MB")


def test_a_camera_that_never_sends_a_keyframe_gets_one_bounded_flagged_segment(
    tmp_path: Path, hostile: StartHostile, gateway: StartGateway
) -> None:
    """One keyframe, then only predicted pictures: the segment is cut at its time bound
    (2 × 2 s, at least 10 s more: 12 s), flagged no_keyframe, and nothing more is written until
    a keyframe comes; the status says why."""
    camera = hostile("no-keyframe")
    config = write_config(
        tmp_path / "gw.yaml",
        tmp_path / "rec",
        [{"id": "nokey", "url": camera.url()}],
        storage={"segment_duration": "2s"},
    )
    gw = gateway(config)
    index = tmp_path / "rec" / "index.sqlite3"
    row = wait_until(
        lambda: index.exists() and next((s for s in gw.listing()["segments"] if s["flags"]), None),
        25,
        "a segment cut for want of a keyframe",
    )
    assert row["flags"] == ["no_keyframe"]
    assert 11.0 <= row["duration"] <= 13.5, row
    status = wait_until(
        lambda: "no keyframe" in ((s := gw.status()["nokey"])["recording_error"] or "") and s,
        3,
        "the status to say why",
    )
    assert status["recording"] is False
    time.sleep(3)
    assert gw.segments("nokey", partial=True) == [], "nothing is written without a keyframe"
    text = gw.metrics()
    assert metric(text, 'camera_gateway_recording_no_keyframe_cuts_total{camera="nokey"}') == 1
    assert gw.stop() == 0


def test_a_camera_over_its_bitrate_ceiling_is_cut_and_retried_slowly(
    tmp_path: Path, cameras: StartCamera, hostile: StartHostile, gateway: StartGateway
) -> None:
    good = cameras(["/a:fps=25:gop=25"])
    flood = hostile("flood", rate=3_000_000)
    config = write_config(
        tmp_path / "gw.yaml",
        tmp_path / "rec",
        [
            {"id": "good", "url": good.url("/a")},
            {"id": "flood", "url": flood.url(), "max_bitrate": "8Mbit/s"},
        ],
        storage={"segment_duration": "2s"},
    )
    gw = gateway(config)
    wait_until(lambda: gw.status()["flood"]["state"] == "online", 20, "the flood online")
    online = time.monotonic()
    status = wait_until(
        lambda: (s := gw.status()["flood"])["state"] == "error" and s, 10, "the ceiling enforced"
    )
    cut_after = time.monotonic() - online
    assert "over its ceiling of 8 Mbit/s" in status["error"], status
    time.sleep(2.5)  # a retry at once (0.2 s) would show it connecting again by now
    assert gw.status()["flood"]["state"] == "error", "retried slowly, not at once"
    assert gw.status()["good"]["state"] == "online"
    assert gw.stop() == 0
    for path in gw.segments("flood"):
        assert decode_errors(path) == "", path.name
    assert max(_gaps(gw.listing(), "good"), default=0.0) <= 2.0
    print(f"\nflood cut {cut_after:.1f} s after it came online: {status['error']}")


def test_a_worker_past_its_memory_cap_fails_alone(
    tmp_path: Path, cameras: StartCamera, hostile: StartHostile, gateway: StartGateway
) -> None:
    """Fragments that never end at 30 MB/s, against a 128 MiB cap: the
    worker's memory never passes the cap (FFmpeg's allocations are capped, the worker's data
    too, and the supervisor kills it past the cap), and the good camera goes on."""
    good = cameras(["/a:fps=25:gop=25"])
    bad = hostile("fua-endless", rate=30_000_000, good_first=2.0)
    config = write_config(
        tmp_path / "gw.yaml",
        tmp_path / "rec",
        [{"id": "good", "url": good.url("/a")}, {"id": "bad", "url": bad.url()}],
        storage={"segment_duration": "2s"},
        workers={"memory_max": "128MiB"},
    )
    gw = gateway(config)
    wait_until(lambda: gw.status()["bad"]["state"] == "online", 20, "bad online")
    peak = 0
    end = time.monotonic() + 15
    while time.monotonic() < end:
        pid = gw.workers().get("bad")
        if pid:
            peak = max(peak, rss_bytes(pid))
        time.sleep(0.05)
    status = gw.status()
    assert gw.stop() == 0
    assert peak < 128 * 2**20 + 32 * 2**20, f"the worker reached {peak / 2**20:.0f} MiB"
    assert status["bad"]["state"] in BAD_STATES and status["bad"]["error"], status["bad"]
    assert status["good"]["state"] == "online"
    assert max(_gaps(gw.listing(), "good"), default=0.0) <= 2.0
    print(f"\npeak worker RSS {peak / 2**20:.0f} MiB; bad: {status['bad']['error']}")
