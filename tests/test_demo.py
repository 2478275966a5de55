"""`camera-gateway demo`, the embedded default behind `make demo`: four simulated cameras
recorded, one forwarded to a local centre (FFmpeg), the status on a local mosquitto, and a
configuration the other commands read afterwards."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from helpers import ROOT, MqttWatcher, cli, decode_errors, free_port, wait_until

from gateway.daemon.demo import DEMO_CAMERAS, FORWARDED


@dataclass
class Demo:
    """``camera-gateway demo`` as a process; its stdout read as it comes."""

    process: subprocess.Popen[str]
    stderr_path: Path
    stdout: list[str] = field(default_factory=list)

    @property
    def out(self) -> str:
        return "".join(self.stdout)

    @property
    def err(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def part_pids(self) -> list[int]:
        """Every mosquitto and ffmpeg the demo said it started."""
        return [int(pid) for pid in re.findall(r"\((?:ffmpeg|mosquitto), pid (\d+)\)", self.err)]

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout)


StartDemo = Callable[..., Demo]


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[StartDemo]:
    started: list[Demo] = []

    def start(*args: str, env: dict[str, str] | None = None) -> Demo:
        stderr_path = tmp_path / f"demo-{len(started)}.err"
        with stderr_path.open("w") as stderr:
            process = subprocess.Popen(
                [sys.executable, "-m", "gateway", "demo", *args],
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                cwd=ROOT,
                env={**os.environ, **(env or {})},
            )
        run = Demo(process, stderr_path)
        assert process.stdout is not None
        stream = process.stdout
        reader = threading.Thread(
            target=lambda: run.stdout.extend(iter(stream.readline, "")), daemon=True
        )
        reader.start()
        started.append(run)
        return run

    yield start
    for run in started:
        if run.process.poll() is None:
            run.process.kill()
            run.process.wait()
        for pid in run.part_pids():
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a process still there (a zombie counts: nobody reaped it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _tables(out: str) -> list[str]:
    return out.split("camera-gateway · site demo")[1:]


def _row(table: str, camera: str) -> str:
    return next(line for line in table.splitlines() if line.startswith(camera))


def test_the_demo_records_forwards_publishes_and_leaves_a_config_the_commands_read(
    tmp_path: Path, demo: StartDemo
) -> None:
    folder = tmp_path / "demo"
    metrics = free_port()
    run = demo(
        *("--dir", str(folder), "--duration", "20s", "--forward", "6s"),
        *("--metrics", f"127.0.0.1:{metrics}"),
    )
    found = wait_until(
        lambda: re.search(r"MQTT broker on 127\.0\.0\.1:(\d+)", run.err), 15, "the demo's broker"
    )
    watcher = MqttWatcher(int(found.group(1)), "viewer", "", "camera-gateway/#")
    try:
        topic = f"camera-gateway/demo/cameras/{FORWARDED}/status"
        wait_until(lambda: topic in watcher.retained, 15, "the camera status over MQTT")
        wait_until(
            lambda: any(
                t == topic and json.loads(p)["forward"] == "live" for t, p, _ in watcher.messages
            ),
            15,
            "the forward live over MQTT",
        )
        assert run.wait(40) == 0, run.err[-3000:]
    finally:
        watcher.close()

    tables = _tables(run.out)
    assert any("live (" in _row(t, FORWARDED) for t in tables), "the forward is shown live"
    last = tables[-1]
    assert _row(last, FORWARDED).endswith(" off"), "then it has ended by itself"
    for camera in DEMO_CAMERAS:
        row = _row(last, camera)
        assert " online " in row and "h264 640x360" in row, row
        segments = sorted((folder / camera).rglob("*.mp4"))
        assert len(segments) >= 2, camera
        assert decode_errors(segments[0]) == ""
    assert "storage:" in last and "of 22.9 MiB" in last
    assert f"metrics on 127.0.0.1:{metrics}" in run.out
    assert "mosquitto_sub -h 127.0.0.1 -p " in last and "-t 'camera-gateway/#'" in last

    config = folder / "config.yaml"
    hint = rf"CAMERA_GATEWAY_CONFIG={re.escape(str(config))} \S*camera-gateway recordings list"
    assert re.search(hint, run.out), "the demo says how to read what it left"
    env = {"CAMERA_GATEWAY_CONFIG": str(config)}
    listing = cli("recordings", "list", "--json", env=env)
    assert listing.returncode == 0, listing.stderr
    recorded = {s["camera"] for s in json.loads(listing.stdout)["segments"]}
    assert recorded == set(DEMO_CAMERAS)
    journal = cli("audit", "show", "--json", env=env)
    assert journal.returncode == 0, journal.stderr
    entries = [json.loads(line) for line in journal.stdout.splitlines()]
    forwards = [e for e in entries if e["event"].startswith("forward_")]
    assert [e["event"] for e in forwards] == ["forward_started", "forward_stopped"]
    assert forwards[0]["camera"] == FORWARDED and forwards[0]["reason"].startswith("demo")
    assert forwards[1]["stop_reason"] == "expired" and forwards[1]["bytes_sent"] > 10_000
    assert "password" not in config.read_text()

    pids = run.part_pids()
    assert len(pids) >= 3, run.err  # the centre, again after the session, and the broker
    assert not [pid for pid in pids if _alive(pid)], "every part the demo started is gone"


def test_without_mosquitto_the_demo_says_so_records_and_stops_its_centre_on_sigterm(
    tmp_path: Path, demo: StartDemo
) -> None:
    ffmpeg = shutil.which("ffmpeg")
    assert ffmpeg is not None
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "ffmpeg").symlink_to(ffmpeg)  # the only program on PATH
    folder = tmp_path / "demo"
    run = demo(
        *("--dir", str(folder), "--no-table", "--metrics", f"127.0.0.1:{free_port()}"),
        *("--forward", "2s"),
        env={"PATH": str(bin_dir)},
    )
    wait_until(lambda: "forwarded to the local centre" in run.err, 30, "the forward")
    # The session over, the centre listens for the next one: nothing would end it but the demo.
    wait_until(lambda: "centre listening again" in run.err, 15, "the centre to listen again")
    wait_until(lambda: list((folder / FORWARDED).rglob("*.mp4")), 10, "a recording")
    run.process.send_signal(signal.SIGTERM)
    assert run.wait(20) == 0, run.err[-3000:]

    said = [line for line in run.err.splitlines() if "MQTT" in line]
    assert len(said) == 1 and "no MQTT: mosquitto is not on PATH" in said[0], said
    assert "MQTT: connected" not in run.err
    pids = run.part_pids()
    assert len(pids) == 2, run.err  # the centre, and again after the session
    assert not [pid for pid in pids if _alive(pid)], "the centre is stopped with the demo"
    assert not (folder / "control.sock").exists()
    env = {"CAMERA_GATEWAY_CONFIG": str(folder / "config.yaml")}
    journal = cli("audit", "show", "--json", env=env)
    stops = [json.loads(line) for line in journal.stdout.splitlines() if "forward_stopped" in line]
    assert [s["stop_reason"] for s in stops] == ["expired"]


def test_without_ffmpeg_the_demo_says_so_and_publishes_its_status_all_the_same(
    tmp_path: Path, demo: StartDemo
) -> None:
    mosquitto = shutil.which("mosquitto")
    assert mosquitto is not None
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "mosquitto").symlink_to(mosquitto)  # the only program on PATH
    folder = tmp_path / "demo"
    run = demo(
        *("--dir", str(folder), "--duration", "6s", "--metrics", f"127.0.0.1:{free_port()}"),
        env={"PATH": str(bin_dir)},
    )
    assert run.wait(40) == 0, run.err[-3000:]

    said = [line for line in run.err.splitlines() if "no centre" in line]
    assert len(said) == 1 and "ffmpeg is not on PATH" in said[0], said
    assert "MQTT: connected to 127.0.0.1:" in run.err
    last = _tables(run.out)[-1]
    assert _row(last, FORWARDED).endswith(" -"), "no uplink: nothing to forward to"
    assert "uplink" not in (folder / "config.yaml").read_text()
    pids = run.part_pids()
    assert len(pids) == 1 and not _alive(pids[0]), "the broker is stopped with the demo"
