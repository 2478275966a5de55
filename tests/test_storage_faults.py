"""Disk full, read-only and vanished storage: recording degrades, nothing else stops, and it
recovers by itself; what was recorded before stays playable."""

from __future__ import annotations

import os
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from direct_recorder import SMALL_CAMERA, DirectRecorder
from helpers import StartGateway, decode_errors, tmpfs, wait_until, write_config

pytestmark = pytest.mark.root


def _sim(name: str) -> dict[str, str]:
    return {"id": name, "url": f"sim://{name}?width=320&height=240&fps=10&gop=1&bitrate=600"}


def _metrics(config: Path) -> str:
    port = yaml.safe_load(config.read_text())["metrics"]["listen"].rsplit(":", 1)[1]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


def _value(metrics: str, name: str) -> float:
    for line in metrics.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not exposed")


def _fill(root: Path, leave: int) -> Path:
    stats = os.statvfs(root)
    filler = root / "filler.bin"
    size = stats.f_bavail * stats.f_frsize - leave
    with filler.open("wb") as f:
        f.write(b"\0" * max(0, size))
    return filler


def test_disk_full_degrades_recording_then_recovers(tmp_path: Path, gateway: StartGateway) -> None:
    with tmpfs(tmp_path / "disk", "8m") as root:
        config = write_config(
            tmp_path / "gw.yaml",
            root,
            [_sim("gate"), _sim("court")],
            storage={"quota": "1GiB", "min_free": 0, "segment_duration": "1s"},
        )
        gw = gateway(config)
        gw.wait_log("camera court: online", 15)
        wait_until(lambda: len(gw.segments("gate")) >= 2, 15, "segments before the disk fills")
        filler = _fill(root, leave=40_000)
        gw.wait_log("camera gate: recording stopped: disk full", 15)
        before = gw.segments()

        # The daemon and the cameras keep running; the failure is visible in the metrics.
        time.sleep(2)
        assert gw.proc is not None and gw.proc.poll() is None
        metrics = _metrics(config)
        assert _value(metrics, 'camera_gateway_camera_up{camera="gate"}') == 1.0
        assert _value(metrics, 'camera_gateway_recording_active{camera="gate"}') == 0.0
        for path in before:
            if path.exists():
                assert decode_errors(path) == "", f"{path.name} damaged by the full disk"

        filler.unlink()
        gw.wait_log("camera gate: recording again", 20)
        gw.wait_log("camera court: recording again", 20)
        count = len(gw.segments("gate"))
        wait_until(lambda: len(gw.segments("gate")) >= count + 2, 15, "recording after recovery")
        assert gw.stop() == 0
        for path in gw.segments():
            assert decode_errors(path) == "", path.name
        assert gw.segments(partial=True) == []
        # One error line per stop and one recovery line per recovery, however many retries each
        # took (retries are silent). With 40 kB left, a camera may get one fragment through
        # (recording again) before the disk is full again: a real second stop, logged as such.
        for camera in ("gate", "court"):
            stops = gw.log.count(f"camera {camera}: recording stopped: disk full")
            recoveries = gw.log.count(f"camera {camera}: recording again")
            assert 1 <= stops <= 3 and recoveries == stops, gw.log
        # Segments finished while the index could not be written are indexed once space is back.
        listed = {Path(s["path"]) for s in gw.listing()["segments"]}
        assert listed == set(gw.segments())


def test_read_only_storage_degrades_then_recovers(tmp_path: Path, gateway: StartGateway) -> None:
    with tmpfs(tmp_path / "disk", "16m") as root:
        config = write_config(
            tmp_path / "gw.yaml",
            root,
            [_sim("lift")],
            storage={"segment_duration": "1s", "min_free": 0},
        )
        gw = gateway(config)
        gw.wait_log("camera lift: online", 15)
        wait_until(lambda: len(gw.segments("lift")) >= 2, 15, "segments")
        # A read-only view of the same filesystem stacked on the path: every new file fails
        # with EROFS, as after an ext4 "errors=remount-ro".
        subprocess.run(["mount", "--bind", str(root), str(root)], check=True)
        subprocess.run(["mount", "-o", "remount,ro,bind", str(root)], check=True)
        try:
            gw.wait_log("recording stopped: storage is read-only", 10)
            time.sleep(1.5)
            assert gw.proc is not None and gw.proc.poll() is None
        finally:
            subprocess.run(["umount", str(root)], check=True)
        gw.wait_log("camera lift: recording again", 20)
        count = len(gw.segments("lift"))
        wait_until(lambda: len(gw.segments("lift")) >= count + 2, 15, "recording after recovery")
        assert gw.stop() == 0
        for path in gw.segments():
            assert decode_errors(path) == "", path.name


def test_vanished_storage_is_not_replaced_by_the_system_disk(
    tmp_path: Path, gateway: StartGateway
) -> None:
    root = tmp_path / "disk"
    with tmpfs(root, "16m"):
        config = write_config(
            tmp_path / "gw.yaml",
            root,
            [_sim("hall")],
            storage={"segment_duration": "1s", "min_free": 0},
        )
        gw = gateway(config)
        gw.wait_log("camera hall: online", 15)
        wait_until(lambda: len(gw.segments("hall")) >= 2, 15, "segments")
        subprocess.run(["umount", "-l", str(root)], check=True)
        gw.wait_log("lost its marker file", 10)
        time.sleep(2)
        # Nothing is written onto the folder the disk was mounted on.
        assert list(root.iterdir()) == []
        assert gw.proc is not None and gw.proc.poll() is None
        # A disk mounted there again is adopted and recording resumes.
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(root)], check=True)
        gw.wait_log("camera hall: recording again", 20)
        wait_until(lambda: len(gw.segments("hall")) >= 2, 15, "recording on the new disk")
        assert gw.stop() == 0


def test_daemon_starts_on_unusable_storage_and_records_once_it_is_usable(
    tmp_path: Path, gateway: StartGateway
) -> None:
    with tmpfs(tmp_path / "disk", "16m") as root:
        subprocess.run(["mount", "--bind", str(root), str(root)], check=True)
        subprocess.run(["mount", "-o", "remount,ro,bind", str(root)], check=True)
        try:
            config = write_config(
                tmp_path / "gw.yaml",
                root,
                [_sim("entry")],
                storage={"segment_duration": "1s", "min_free": 0},
            )
            gw = gateway(config)
            gw.wait_log("camera entry: online", 15)
            assert "cannot use storage" in gw.log and "read-only" in gw.log
            time.sleep(1.5)
            assert gw.proc is not None and gw.proc.poll() is None
            assert _value(_metrics(config), 'camera_gateway_camera_up{camera="entry"}') == 1.0
        finally:
            subprocess.run(["umount", str(root)], check=True)
        gw.wait_log("ready:", 10)
        wait_until(lambda: len(gw.segments("entry")) >= 2, 15, "recording once writable")
        assert gw.stop() == 0


def test_retries_on_a_full_disk_do_not_count_as_recording(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A retry opens a segment before knowing whether the disk takes it: status, MQTT and
    metrics show the camera recording again only once media has reached the disk."""
    with tmpfs(tmp_path / "disk", "4m") as root:
        rig = DirectRecorder(root / "rec", "hall", SMALL_CAMERA, segment_duration=1)
        opened = 0
        new_segment = rig.storage.new_segment

        def counting(camera: str, start: float) -> Path:
            nonlocal opened
            opened += 1
            return new_segment(camera, start)

        monkeypatch.setattr(rig.storage, "new_segment", counting)
        rig.record(1.5)
        assert rig.status.recording and rig.status.error is None
        filler = _fill(root, leave=40_000)
        before = opened
        failing = rig.record(4.5)  # retries about 1 s and 3 s after the failure, at a keyframe
        retries = opened - before
        filler.unlink()
        recovering = rig.record(5.5)  # the next retry comes about 4 s later, and succeeds
        rig.close()
    assert retries >= 2, "the recorder did not retry while the disk was full"
    assert any(error == "disk full" for _, error in failing)
    assert not any(recording for recording, error in failing if error), "recording while failing"
    # The successful retry: not recording until its first sync, then recording for good.
    assert not any(recording and error for recording, error in recovering)
    back = next(i for i, (_, error) in enumerate(recovering) if error is None)
    assert all(recording for recording, _ in recovering[back:])


def test_a_disk_filling_up_under_the_cameras_never_leaves_a_bad_segment_indexed(
    tmp_path: Path, gateway: StartGateway
) -> None:
    """Retention frees space while the cameras fill a small disk: writes run out of space in
    the middle of a fragment, again and again. Every segment kept, and every segment indexed,
    decodes without a single error in ffmpeg's decoder."""
    with tmpfs(tmp_path / "disk", "1500k") as root:
        config = write_config(
            tmp_path / "gw.yaml",
            root,
            [
                {
                    "id": f"cam{i}",
                    "url": f"sim://c{i}?width=640&height=360&fps=25&gop=1&bitrate=3000",
                }
                for i in range(3)
            ],
            storage={"quota": "1GiB", "min_free": "30KB", "segment_duration": "4s"},
        )
        gw = gateway(config)
        wait_until(lambda: "disk full" in gw.log, 40, "the disk to fill")
        time.sleep(8)  # filling, evicting and filling again
        assert gw.stop() == 0
        listing = gw.listing()
        indexed = [Path(s["path"]) for s in listing["segments"]]
        assert indexed, "something was recorded"
        for path in gw.segments():
            assert decode_errors(path) == "", f"{path.name} does not decode"
        for path in indexed:
            assert path.exists(), f"{path.name} indexed but missing"
        evictions, full = gw.log.count("evicted "), gw.log.count("disk full")
        print(f"\n{len(indexed)} segments indexed, all decode; {evictions} evictions, {full} full")
