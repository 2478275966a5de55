"""Each camera in its own worker process: a worker that dies is restarted without the daemon,
its interrupted segment is kept at once, and no worker ever outlives the daemon or its camera."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import yaml
from helpers import (
    NotifySocket,
    StartGateway,
    alive,
    decode_errors,
    descendants,
    metric,
    process_name,
    wait_until,
    write_config,
)
from hostile import StartHostile


def _sim(name: str, fps: int = 15) -> dict[str, str]:
    return {"id": name, "url": f"sim://{name}?width=320&height=240&fps={fps}&gop=1"}


def _longest_gap(listing: dict[str, Any], camera: str) -> float:
    return max((g["duration"] for g in listing["gaps"] if g["camera"] == camera), default=0.0)


def test_a_killed_worker_is_restarted_alone_and_its_segment_kept_at_once(
    tmp_path: Path, gateway: StartGateway
) -> None:
    notify = NotifySocket(tmp_path / "notify.sock")
    try:
        config = write_config(
            tmp_path / "gw.yaml",
            tmp_path / "rec",
            [_sim("hall"), _sim("yard")],
            storage={"segment_duration": "3s"},
        )
        env = {"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "2000000"}
        gw = gateway(config, env=env)
        wait_until(lambda: notify.has("READY", "1"), 20, "READY=1")
        wait_until(lambda: len(gw.segments("hall")) >= 2, 20, "recording")
        workers = gw.workers()
        assert set(workers) == {"hall", "yard"}, workers
        assert gw.proc is not None
        assert workers["hall"] != workers["yard"] != gw.proc.pid
        # A segment with a second of video on disk (fragments are synced twice a second).
        part = wait_until(
            lambda: next(
                (p for p in gw.segments("hall", partial=True) if p.stat().st_size > 20_000), None
            ),
            5,
            "a segment being written",
        )
        time.sleep(0.6)

        os.kill(workers["hall"], signal.SIGKILL)
        killed = time.monotonic()
        kept = part.with_name(part.name.removesuffix(".part"))
        wait_until(kept.exists, 5, "the interrupted segment repaired")
        repaired_after = time.monotonic() - killed
        row = wait_until(
            lambda: next((s for s in gw.listing()["segments"] if Path(s["path"]) == kept), None),
            5,
            "the interrupted segment indexed",
        )
        assert decode_errors(kept) == ""
        assert row["frames"] > 0
        status = wait_until(
            lambda: (s := gw.status()["hall"])["worker"]["restarts"] == 1 and s, 5, "restart"
        )
        assert "SIGKILL" in status["worker"]["last_restart"]
        back = wait_until(
            lambda: (p := gw.workers().get("hall")) and p != workers["hall"] and p, 10, "new worker"
        )
        wait_until(lambda: gw.status()["hall"]["state"] == "online", 10, "hall online again")
        online_after = time.monotonic() - killed
        time.sleep(4)
        assert gw.workers()["yard"] == workers["yard"], "the other camera's worker was untouched"
        pings = notify.times("WATCHDOG")
        after = [t for t in pings if t > killed]
        assert after and max(b - a for a, b in zip([killed, *after], after, strict=False)) < 2.5, (
            "the daemon stays healthy for systemd while a camera's worker restarts"
        )
        text = gw.metrics()
        assert metric(text, 'camera_gateway_worker_restarts_total{camera="hall"}') == 1
        assert metric(text, 'camera_gateway_worker_restarts_total{camera="yard"}') == 0
        assert gw.stop() == 0
        listing = gw.listing()
        assert _longest_gap(listing, "yard") == 0.0, "yard recorded on without a hole"
        print(
            f"\nworker {back} replaced {workers['hall']}; segment kept after "
            f"{repaired_after:.2f} s, camera online again after {online_after:.2f} s"
        )
    finally:
        notify.close()


def test_removing_a_wedged_camera_by_reload_ends_its_worker(
    tmp_path: Path, gateway: StartGateway, hostile: StartHostile
) -> None:
    """The camera's thread is stuck inside FFmpeg's read (fragments that never end): removing
    the camera still ends its worker, with its segment finalised, and nothing is left over."""
    wedged = hostile("fua-endless", rate=1_000_000, good_first=2.0)
    path = tmp_path / "gw.yaml"
    config = write_config(
        path, tmp_path / "rec", [_sim("yard"), {"id": "hall", "url": wedged.url()}]
    )
    gw = gateway(config)
    wait_until(lambda: gw.status()["hall"]["state"] == "online", 20, "hall online")
    wait_until(lambda: gw.status()["hall"]["state"] == "stalled", 10, "hall wedged")
    workers = gw.workers()
    data = yaml.safe_load(path.read_text())
    data["cameras"] = [c for c in data["cameras"] if c["id"] == "yard"]
    path.write_text(yaml.safe_dump(data))
    assert gw.proc is not None
    os.kill(gw.proc.pid, signal.SIGHUP)
    removed = time.monotonic()
    gw.wait_log("reload: camera hall removed", 10)
    took = time.monotonic() - removed
    assert not alive(workers["hall"]), "the removed camera's worker is gone"
    assert gw.workers() == {"yard": workers["yard"]}
    assert not gw.segments("hall", partial=True), "the removed camera's segment was finalised"
    for segment in gw.segments("hall"):
        assert decode_errors(segment) == "", segment.name
    assert gw.stop() == 0
    print(f"\nwedged camera removed in {took:.1f} s")


def test_no_process_outlives_the_daemon_even_when_it_is_killed(
    tmp_path: Path, gateway: StartGateway
) -> None:
    config = write_config(tmp_path / "gw.yaml", tmp_path / "rec", [_sim("hall"), _sim("yard")])
    gw = gateway(config)
    wait_until(lambda: len(gw.workers()) == 2, 20, "two workers")
    assert gw.proc is not None
    tree = descendants(gw.proc.pid)
    names = sorted(process_name(pid) for pid in tree)
    assert names == ["cgw-forkserver", "cgw:hall", "cgw:yard"], names
    gw.kill()
    wait_until(lambda: not [p for p in tree if alive(p)], 5, "every worker gone with the daemon")


def test_a_dead_fork_server_takes_its_workers_and_both_come_back(
    tmp_path: Path, gateway: StartGateway
) -> None:
    config = write_config(tmp_path / "gw.yaml", tmp_path / "rec", [_sim("hall")])
    gw = gateway(config)
    wait_until(lambda: gw.workers().get("hall"), 20, "a worker")
    assert gw.proc is not None
    (server,) = [p for p in descendants(gw.proc.pid) if process_name(p) == "cgw-forkserver"]
    worker = gw.workers()["hall"]
    os.kill(server, signal.SIGKILL)
    wait_until(lambda: not alive(worker), 5, "the worker gone with its fork server")
    wait_until(
        lambda: (p := gw.workers().get("hall")) and p != worker,
        20,
        "a new worker",
    )
    wait_until(lambda: gw.status()["hall"]["state"] == "online", 10, "online again")
    assert gw.stop() == 0
