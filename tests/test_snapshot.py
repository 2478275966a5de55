"""Snapshots and relearning, through the running daemon: the command line and MQTT (a real
mosquitto) against a real RTSP camera. The JPEG is checked by FFmpeg and OpenCV (valid, the
camera's size, the privacy zone black and nothing else), its hash against the audit journal;
refusals are clear, journalled as nothing, and leave the daemon working."""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import socket
import stat
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from helpers import (
    Broker,
    GatewayProcess,
    MqttWatcher,
    StartCamera,
    StartGateway,
    cli,
    decode_errors,
    ffprobe,
    free_port,
    wait_until,
    write_config,
)
from numpy.typing import NDArray

from gateway.commands import CommandError
from gateway.watch.commands import (
    RelearnCommand,
    SnapshotCommand,
    decode_mqtt_command,
    parse_command,
)

P = "camera-gateway/res-0042"
PASSWORD = "Sn4p-s3cret-pw"
POINTS = [(0.6, 0.1), (0.9, 0.1), (0.9, 0.5), (0.6, 0.5)]
ZONE = {"name": "door", "points": [list(point) for point in POINTS]}
INSET = 8
"""Pixels of the zone's outline left out where its interior is judged (JPEG rings at edges)."""


# -- the commands, alone -----------------------------------------------------------------------


def _snapshot_refusal(payload: bytes) -> str:
    with pytest.raises(CommandError) as error:
        decode_mqtt_command(SnapshotCommand, "hall", payload, origin="mqtt")
    return str(error.value)


def test_a_snapshot_command_takes_its_camera_from_the_topic_and_asks_who_by_default() -> None:
    command = decode_mqtt_command(
        SnapshotCommand,
        "hall",
        b'{"reason": "call 4512", "camera": "yard", "origin": "forged"}',
        origin="mqtt",
    )
    assert command == SnapshotCommand(
        camera="hall", reason="call 4512", requested_by="mqtt", origin="mqtt"
    )
    short = parse_command(SnapshotCommand, {"camera": "hall", "reason": "x", "requested_by": "op"})
    assert short.reason == "x", "a short reason will do"


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"{}", "a snapshot needs a reason: it shows people (a call number is enough)"),
        (
            b'{"reason": "   "}',
            "a snapshot needs a reason: it shows people (a call number is enough)",
        ),
        (
            b'{"reason": "call\\n12 FAKE LINE"}',
            "reason: contains U+000A (a control character) at position 5: not allowed",
        ),
        (
            json.dumps({"reason": "x" * 501}).encode(),
            "reason: String should have at most 500 characters",
        ),
        (
            json.dumps({"reason": "r", "requested_by": "op\u202e7"}).encode(),
            "requested_by: contains U+202E (an invisible format character) at position 3: "
            "not allowed",
        ),
        (b'{"reason": "r", "width": 4000}', "width: unknown field"),
        (b"not json", "the payload is not a JSON object"),
        (b"[" * 20_000, "the payload is 20000 bytes; a command is at most 16384"),
    ],
)
def test_bad_snapshot_commands_are_refused_with_a_short_reason(
    payload: bytes, expected: str
) -> None:
    assert _snapshot_refusal(payload) == expected


def test_a_relearn_needs_a_reason_too() -> None:
    with pytest.raises(CommandError) as error:
        parse_command(RelearnCommand, {"camera": "hall", "requested_by": "installer"})
    assert str(error.value) == "a relearn needs a reason: the re-aim or the work it follows"


# -- through the daemon ------------------------------------------------------------------------


def _hall(url: str) -> dict[str, Any]:
    return {
        "id": "hall",
        "url": url,
        "username": "viewer",
        "password": PASSWORD,
        "analysis": {"privacy_zones": [ZONE]},
    }


def _analysed(gw: GatewayProcess, camera: str = "hall") -> None:
    """Wait until the camera's worker holds a keyframe to show."""

    def seen() -> bool:
        tamper = gw.status()[camera].get("tamper") or {}
        return int(tamper.get("keyframes", 0)) >= 1

    wait_until(seen, 20, f"a keyframe of camera {camera}")


def _snapshot(gw: GatewayProcess, out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return cli("snapshot", "--config", str(gw.config), "-o", str(out), *args)


def _zone_mask(shape: tuple[int, ...], grow: int) -> NDArray[np.uint8]:
    """The zone as a filled polygon on the picture, grown (or shrunk, if negative) by ``grow``."""
    height, width = shape[:2]
    mask = np.zeros((height, width), np.uint8)
    points = np.array(
        [[round(x * (width - 1)), round(y * (height - 1))] for x, y in POINTS], np.int32
    )
    cv2.fillPoly(mask, [points], 255)
    kernel = np.ones((2 * abs(grow) + 1, 2 * abs(grow) + 1), np.uint8)
    return np.asarray((cv2.dilate if grow > 0 else cv2.erode)(mask, kernel), np.uint8)


def _check_picture(jpeg: bytes) -> None:
    """640x360, the zone's interior black, the rest of the picture (SMPTE bars) not."""
    picture = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_GRAYSCALE)
    assert picture is not None and picture.shape == (360, 640)
    inside = picture[_zone_mask(picture.shape, -INSET) > 0]
    outside = picture[_zone_mask(picture.shape, 3 * INSET) == 0]
    assert float(inside.mean()) < 10, f"the privacy zone shows: mean {inside.mean():.1f}"
    assert float(outside.mean()) > 60, f"the picture around it is black: {outside.mean():.1f}"


@pytest.mark.camera
def test_snapshot_and_relearn_from_the_command_line(
    tmp_path: Path, cameras: StartCamera, gateway: StartGateway
) -> None:
    camera = cameras(["/main:pattern=smpte:gop=25"], auth=f"viewer:{PASSWORD}")
    closed = free_port()  # nothing listens there: a camera that is offline
    config = write_config(
        tmp_path / "gw.yaml",
        tmp_path / "rec",
        [
            _hall(camera.url("/main")),
            {"id": "yard", "url": f"rtsp://127.0.0.1:{closed}/main"},
            {**_hall(camera.url("/main")), "id": "porch", "analysis": {"enabled": False}},
        ],
    )
    gw = gateway(config)
    _analysed(gw)
    out = tmp_path / "out" / "snap.jpg"
    out.parent.mkdir()

    taken = _snapshot(gw, out, "--camera", "hall", "--reason", "call 4512")
    assert taken.returncode == 0, taken.stderr
    jpeg = out.read_bytes()
    digest = hashlib.sha256(jpeg).hexdigest()
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert [p.name for p in out.parent.iterdir()] == ["snap.jpg"], "no temporary file is left"
    lines = taken.stdout.splitlines()
    assert lines[0] == f"snapshot of camera hall written to {out}"
    assert f"  bytes: {len(jpeg)}" in lines and "  size: 640x360" in lines
    assert f"  sha256: {digest}" in lines
    assert any(line.startswith("  keyframe_at: 20") and line.endswith("Z") for line in lines)

    # FFmpeg, not the daemon's own library, says what the file is.
    streams = ffprobe(out)["streams"]
    assert [(s["codec_name"], s["width"], s["height"]) for s in streams] == [("mjpeg", 640, 360)]
    assert decode_errors(out) == ""
    _check_picture(jpeg)

    (entry,) = gw.audit("snapshot_taken")
    assert entry["sha256"] == digest and entry["bytes"] == len(jpeg)
    assert (entry["camera"], entry["width"], entry["height"]) == ("hall", 640, 360)
    assert entry["requested_by"] == pwd.getpwuid(os.getuid()).pw_name
    assert entry["reason"] == "call 4512" and entry["site"] == "test-site"
    assert entry["origin"].startswith("command line, local user ")
    assert entry["keyframe_at"] in taken.stdout and entry["keyframe_at"].endswith("Z")

    named = _snapshot(gw, out, "--camera", "hall", "--reason", "r", "--by", "officer 7")
    assert named.returncode == 0, named.stderr
    assert gw.audit("snapshot_taken")[-1]["requested_by"] == "officer 7"

    refusals = {
        "yard": (["--camera", "yard", "--reason", "r"], "camera yard is offline"),
        "unknown": (["--camera", "nope", "--reason", "r"], "unknown camera 'nope'"),
        "porch": (["--camera", "porch", "--reason", "r"], "camera porch is not analysed"),
        "blank": (["--camera", "hall", "--reason", "  "], "a snapshot needs a reason"),
        "forged": (["--camera", "hall", "--reason", "r", "--by", "x\nFAKE"], "U+000A"),
    }
    for name, (args, expected) in refusals.items():
        refused = _snapshot(gw, tmp_path / f"{name}.jpg", *args)
        assert refused.returncode == 1, (name, refused.stdout)
        assert "camera-gateway: refused: " in refused.stderr and expected in refused.stderr, name
        assert not (tmp_path / f"{name}.jpg").exists()
    without = _snapshot(gw, tmp_path / "none.jpg", "--camera", "hall")
    assert without.returncode == 2 and "--reason" in without.stderr
    assert len(gw.audit("snapshot_taken")) == 2, "refusals are journalled as nothing taken"

    relearned = cli(
        "analysis", "relearn", "--config", str(config), "--camera", "hall", "--reason", "re-aimed"
    )
    assert relearned.returncode == 0, relearned.stderr
    assert "camera hall: the watch learns the view again" in relearned.stdout
    (entry,) = gw.audit("analysis_relearned")
    assert (entry["camera"], entry["reason"]) == ("hall", "re-aimed")
    assert entry["origin"].startswith("command line, local user ") and entry["requested_by"]
    unknown = cli(
        "analysis", "relearn", "--config", str(config), "--camera", "nope", "--reason", "r"
    )
    assert unknown.returncode == 1 and "unknown camera 'nope'" in unknown.stderr

    assert gw.stop() == 0
    journal = "".join(p.read_text() for p in (tmp_path / "rec" / "audit").glob("*.jsonl"))
    for text in (journal, gw.log, taken.stdout, taken.stderr):
        assert PASSWORD not in text


def _mqtt_config(tmp_path: Path, url: str, port: int, **extra: Any) -> Path:
    mqtt = {
        "host": "127.0.0.1",
        "port": port,
        "username": "gateway",
        "password": "gw-secret",
        "keepalive": "5s",
        "status_interval": "2s",
    }
    return write_config(
        tmp_path / "gw.yaml", tmp_path / "rec", [_hall(url)], site_id="res-0042", mqtt=mqtt, **extra
    )


def _results(watcher: MqttWatcher, camera: str = "hall") -> list[dict[str, Any]]:
    topic = f"{P}/cameras/{camera}/snapshot/result"
    return [json.loads(p) for t, p, _ in watcher.messages if t == topic]


def _pictures(watcher: MqttWatcher) -> list[tuple[bytes, bool]]:
    return [(p, r) for t, p, r in watcher.messages if t == f"{P}/cameras/hall/snapshot"]


@pytest.mark.camera
def test_snapshot_and_relearn_over_mqtt(
    tmp_path: Path, broker: Broker, cameras: StartCamera, gateway: StartGateway
) -> None:
    camera = cameras(["/main:pattern=smpte:gop=25"], auth=f"viewer:{PASSWORD}")
    watcher = MqttWatcher(broker.port, "watcher", "w-secret", f"{P}/#")
    try:
        gw = gateway(_mqtt_config(tmp_path, camera.url("/main"), broker.port))
        wait_until(lambda: watcher.retained.get(f"{P}/availability") == b"online", 15, "online")
        _analysed(gw)

        ask = {"requested_by": "CSU Marseille, operator 7", "reason": "call 4512"}
        watcher.publish(f"{P}/cameras/hall/snapshot/set", json.dumps(ask))
        wait_until(lambda: _results(watcher), 10, "the snapshot's result")
        ((jpeg, retained),) = _pictures(watcher)
        assert not retained, "a snapshot is never retained"
        _check_picture(jpeg)
        (result,) = _results(watcher)
        digest = hashlib.sha256(jpeg).hexdigest()
        assert result["ok"] and result["sha256"] == digest and result["bytes"] == len(jpeg)
        assert (result["width"], result["height"]) == (640, 360)
        assert result["requested_by"] == ask["requested_by"]
        (entry,) = gw.audit("snapshot_taken")
        assert (entry["sha256"], entry["origin"], entry["reason"]) == (digest, "mqtt", "call 4512")
        assert entry["requested_by"] == ask["requested_by"]
        wait_until(lambda: watcher.events("snapshot_taken"), 5, "the event")
        (event,) = watcher.events("snapshot_taken")
        assert event["sha256"] == digest and event["camera"] == "hall"
        assert "jpeg" not in event and "reason" not in event

        bad = [
            ("hall", "not json", "the payload is not a JSON object"),
            ("hall", json.dumps({"requested_by": "CSU"}), "a snapshot needs a reason"),
            ("hall", json.dumps({"reason": "r", "quality": 100}), "quality: unknown field"),
            ("nope", json.dumps({"reason": "r"}), "unknown camera 'nope'"),
        ]
        for camera_id, payload, _ in bad:
            watcher.publish(f"{P}/cameras/{camera_id}/snapshot/set", payload)
        wait_until(lambda: len(_results(watcher)) + len(_results(watcher, "nope")) > len(bad), 10)
        rejections = watcher.events("command_rejected")
        for (_, _, expected), event in zip(bad, rejections, strict=True):
            assert expected in event["reason"] and event["command"] == "snapshot", event
        refused = [*_results(watcher)[1:], *_results(watcher, "nope")]
        for (_, _, expected), answer in zip(bad, refused, strict=True):
            assert not answer["ok"] and expected in answer["message"] and answer["sha256"] is None
        assert len(_pictures(watcher)) == 1 and len(gw.audit("snapshot_taken")) == 1

        relearn = {"requested_by": "installer", "reason": "re-aimed after works"}
        watcher.publish(f"{P}/cameras/hall/analysis/relearn/set", json.dumps(relearn))
        watcher.publish(f"{P}/cameras/hall/analysis/relearn/set", "{}")
        wait_until(lambda: watcher.events("analysis_relearned"), 10, "the relearn")
        wait_until(lambda: len(watcher.events("command_rejected")) > len(bad), 10, "its refusal")
        assert "a relearn needs a reason" in watcher.events("command_rejected")[-1]["reason"]
        (entry,) = gw.audit("analysis_relearned")
        assert (entry["origin"], entry["requested_by"]) == ("mqtt", "installer")

        # The daemon goes on: another snapshot, and the status still published.
        watcher.publish(f"{P}/cameras/hall/snapshot/set", json.dumps(ask))
        wait_until(lambda: len(_pictures(watcher)) == 2, 10, "a second snapshot")
        assert watcher.json(f"{P}/cameras/hall/status")["state"] == "online"
        assert gw.stop() == 0
        published = b"".join(p for _, p, _ in watcher.messages)
        assert PASSWORD.encode() not in published and PASSWORD not in gw.log
    finally:
        watcher.close()


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def _small_broker(directory: Path, max_packet: int) -> Iterator[int]:
    """mosquitto taking no packet over ``max_packet`` bytes (and saying so to MQTT 5 clients)."""
    port = free_port()
    directory.mkdir()
    config = directory / "mosquitto.conf"
    lines = [
        *(["user root"] if os.geteuid() == 0 else []),
        "persistence false",
        "allow_anonymous true",
        f"max_packet_size {max_packet}",
        f"listener {port} 127.0.0.1",
    ]
    config.write_text("\n".join(lines) + "\n")
    with (directory / "mosquitto.log").open("ab") as log:
        process = subprocess.Popen(["mosquitto", "-c", str(config)], stdout=log, stderr=log)
    try:
        wait_until(lambda: _listening(port), 10, "mosquitto to listen")
        yield port
    finally:
        process.terminate()
        process.wait(5)


@pytest.mark.camera
def test_a_snapshot_larger_than_the_broker_takes_is_refused_not_a_crash(
    tmp_path: Path, cameras: StartCamera, gateway: StartGateway
) -> None:
    camera = cameras(["/main:pattern=smpte:gop=25"], auth=f"viewer:{PASSWORD}")
    with _small_broker(tmp_path / "small-broker", 8000) as port:
        watcher = MqttWatcher(port, "watcher", "w-secret", f"{P}/#")
        try:
            gw = gateway(_mqtt_config(tmp_path, camera.url("/main"), port))
            wait_until(lambda: watcher.retained.get(f"{P}/availability") == b"online", 15, "up")
            _analysed(gw)
            watcher.publish(f"{P}/cameras/hall/snapshot/set", json.dumps({"reason": "r"}))
            wait_until(lambda: _results(watcher), 10, "the snapshot's result")
            (result,) = _results(watcher)
            assert not result["ok"] and "the MQTT broker takes at most" in result["message"]
            assert _pictures(watcher) == [] and gw.audit("snapshot_taken") == []
            wait_until(lambda: watcher.events("command_rejected"), 5, "the rejection event")
            # Still connected: the status goes on being published.
            count = sum(1 for t, _, _ in watcher.messages if t.endswith("/hall/status"))
            wait_until(
                lambda: (
                    sum(1 for t, _, _ in watcher.messages if t.endswith("/hall/status")) > count
                ),
                10,
                "the next status",
            )
            assert "MQTT: disconnected" not in gw.log
            assert gw.stop() == 0
        finally:
            watcher.close()
