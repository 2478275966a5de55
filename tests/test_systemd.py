"""The daemon under systemd's protocols: sd_notify over a real NOTIFY_SOCKET datagram socket,
the watchdog (including a worker wedged on a frozen filesystem), reload on SIGHUP, and logs
to the journal with CAMERA= and SITE= fields."""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from helpers import NotifySocket, StartGateway, cli, metric, wait_until, write_config


def _sim(name: str, fps: int = 10) -> dict[str, str]:
    return {"id": name, "url": f"sim://{name}?width=320&height=240&fps={fps}&gop=1"}


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[NotifySocket]:
    sock = NotifySocket(tmp_path / "notify.sock")
    yield sock
    sock.close()


def test_ready_status_watchdog_and_stopping(
    tmp_path: Path, notify: NotifySocket, gateway: StartGateway
) -> None:
    config = write_config(tmp_path / "gw.yaml", tmp_path / "rec", [_sim("hall"), _sim("yard")])
    env = {"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "2000000"}
    started = time.monotonic()
    gw = gateway(config, env=env)
    wait_until(lambda: notify.has("READY", "1"), 15, "READY=1")
    ready_at = notify.times("READY")[0] - started
    assert "camera hall: online" in gw.log and "camera yard: online" in gw.log, (
        "READY=1 comes after every camera's first connection attempt"
    )
    status = next(f["STATUS"] for _, f in notify.drain() if "READY" in f)
    assert "cameras online" in status and "% of quota" in status
    time.sleep(5)
    pings = notify.times("WATCHDOG")
    assert len(pings) >= 4, "WATCHDOG=1 every second (half of WATCHDOG_USEC)"
    assert max(b - a for a, b in itertools.pairwise(pings)) < 2.0
    assert gw.stop() == 0
    assert notify.has("STOPPING", "1")
    print(f"\nREADY=1 {ready_at:.2f} s after start")


@pytest.mark.root
def test_a_disk_that_stops_answering_is_reported_and_the_daemon_stays_up(
    tmp_path: Path, notify: NotifySocket, gateway: StartGateway
) -> None:
    """A hung disk is reported within seconds (status, metrics); the daemon is not restarted for
    it: a restart would not unfreeze the disk, and would cut live forwards that need no disk."""
    image, mount = tmp_path / "disk.img", tmp_path / "disk"
    subprocess.run(["truncate", "-s", "64M", str(image)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True)
    mount.mkdir()
    subprocess.run(["mount", "-o", "loop", str(image), str(mount)], check=True)
    frozen = False
    try:
        config = write_config(
            tmp_path / "gw.yaml",
            mount,
            [_sim("hall", fps=25)],
            storage={"segment_duration": "1s", "min_free": 0},
        )
        env = {"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "2000000"}
        gw = gateway(config, env=env)
        wait_until(lambda: notify.has("READY", "1"), 15, "READY=1")
        wait_until(lambda: len(gw.segments("hall")) >= 1, 10, "recording")
        # The disk stops answering: writes block, as on a dying SD card or a hung mount.
        subprocess.run(["fsfreeze", "-f", str(mount)], check=True)
        frozen = True
        froze = time.monotonic()

        def reported() -> dict[str, object] | None:
            result = cli("status", "--config", str(config), "--json")
            if result.returncode != 0:
                return None
            (camera,) = json.loads(result.stdout)["cameras"]
            error = camera["recording_error"] or ""
            return camera if "not answering" in error else None

        camera = wait_until(reported, 20, "the stuck disk reported in the status")
        reported_after = time.monotonic() - froze
        assert camera["recording"] is False
        assert metric(gw.metrics(), 'camera_gateway_recording_active{camera="hall"}') == 0
        notify.drain()
        time.sleep(3)
        pings = notify.times("WATCHDOG")
        assert [t for t in pings if t > froze + reported_after + 2], (
            "WATCHDOG=1 goes on: the daemon itself is healthy"
        )
        subprocess.run(["fsfreeze", "-u", str(mount)], check=True)
        frozen = False
        thawed = len(gw.segments("hall"))
        wait_until(lambda: len(gw.segments("hall")) > thawed + 1, 15, "recording again")
        assert gw.stop() == 0
        print(f"\nstuck disk reported {reported_after:.1f} s after it froze")
    finally:
        if frozen:
            subprocess.run(["fsfreeze", "-u", str(mount)], check=False)
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_sighup_reload_changes_only_what_changed(
    tmp_path: Path, notify: NotifySocket, gateway: StartGateway
) -> None:
    path = write_config(
        tmp_path / "gw.yaml",
        tmp_path / "rec",
        [_sim("keep"), _sim("drop"), _sim("change")],
        storage={"segment_duration": "1s"},
    )
    gw = gateway(path, env={"NOTIFY_SOCKET": str(notify.path)})
    wait_until(lambda: notify.has("READY", "1"), 15, "READY=1")
    time.sleep(2)

    data = yaml.safe_load(path.read_text())
    data["cameras"] = [_sim("keep"), _sim("change", fps=5), _sim("new")]
    path.write_text(yaml.safe_dump(data))
    assert gw.proc is not None
    gw.proc.send_signal(signal.SIGHUP)
    gw.wait_log("reload: camera new added", 10)
    assert "reload: camera drop removed" in gw.log and "reload: camera change changed" in gw.log
    assert notify.has("RELOADING", "1")
    wait_until(lambda: len(gw.segments("new")) >= 1, 10, "the new camera recording")

    # An invalid file is refused; the running configuration stays.
    good = path.read_text()
    path.write_text(good.replace("quota:", "quota: -1 #"))
    assert cli("check-config", "--config", str(path)).returncode == 2
    gw.proc.send_signal(signal.SIGHUP)
    gw.wait_log("reload refused, the running configuration stays", 10)
    time.sleep(2)
    assert gw.proc.poll() is None
    path.write_text(good)
    assert gw.stop() == 0

    listing = gw.listing()
    assert [g for g in listing["gaps"] if g["camera"] == "keep"] == [], "keep was not interrupted"
    assert gw.log.count("camera keep: online") == 1


@pytest.mark.root
def test_logs_go_to_the_journal_with_camera_and_site_fields(
    tmp_path: Path, gateway: StartGateway
) -> None:
    journal_dir = Path("/run/systemd/journal")
    socket_path = journal_dir / "socket"
    if socket_path.exists():
        pytest.skip("a journald is running here; not replacing its socket")
    created_dir = not journal_dir.exists()
    journal_dir.mkdir(parents=True, exist_ok=True)
    journal = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    journal.bind(str(socket_path))
    journal.settimeout(0.2)
    try:
        config = write_config(
            tmp_path / "gw.yaml", tmp_path / "rec", [_sim("hall")], site_id="res-7"
        )
        stderr = tmp_path / "stderr.log"
        with stderr.open("wb") as out:
            info = os.fstat(out.fileno())
            proc = subprocess.Popen(
                [sys.executable, "-m", "gateway", "run", "--config", str(config)],
                stdout=out,
                stderr=out,
                env={**os.environ, "JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino}"},
                cwd=Path(__file__).resolve().parent.parent,
            )
        entries: list[dict[str, str]] = []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not any(
            "online" in e.get("MESSAGE", "") for e in entries
        ):
            try:
                data = journal.recv(65536)
            except TimeoutError:
                continue
            entries.append(_journal_fields(data))
        proc.terminate()
        proc.wait(10)
    finally:
        journal.close()
        socket_path.unlink(missing_ok=True)
        if created_dir:
            journal_dir.rmdir()
    online = next(e for e in entries if "camera hall: online" in e.get("MESSAGE", ""))
    assert online["CAMERA"] == "hall" and online["SITE"] == "res-7"
    assert online["SYSLOG_IDENTIFIER"] == "camera-gateway" and online["PRIORITY"] == "6"
    assert all(e["SITE"] == "res-7" for e in entries)
    assert b"online" not in stderr.read_bytes(), "under systemd the log goes to the journal only"


def _journal_fields(data: bytes) -> dict[str, str]:
    """Parse the journal's native datagram format (KEY=value lines, or KEY\\n<len><value>)."""
    fields: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        end = data.index(b"\n", pos)
        line = data[pos:end]
        if b"=" in line:
            key, _, value = line.partition(b"=")
            fields[key.decode()] = value.decode(errors="replace")
            pos = end + 1
        else:
            size = int.from_bytes(data[end + 1 : end + 9], "little")
            fields[line.decode()] = data[end + 9 : end + 9 + size].decode(errors="replace")
            pos = end + 9 + size + 1
    return fields
