"""The command line as a user meets it: clear errors, exit codes, listings, reindex."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from helpers import StartGateway, cli, wait_until, write_config


def _sim(name: str) -> dict[str, str]:
    return {"id": name, "url": f"sim://{name}?width=320&height=240&fps=10&gop=1"}


BAD_CONFIGS = [
    (
        "site_id: x\nstorage: {path: /tmp/x, quota: 1GB, colour: blue}\n",
        "storage.colour: unknown key",
    ),
    ("site_id: x\nstorage: {path: /tmp/x, quota: 12XB}\n", "storage.quota: invalid size '12XB'"),
    (
        "site_id: x\nstorage: {path: /tmp/x, quota: 1GB, max_age: 31d}\n",
        "Code de la sécurité intérieure L252-5",
    ),
    (
        "site_id: x\nstorage: {path: /tmp/x, quota: 1GB, max_age: 2w}\n",
        "storage.max_age: invalid duration '2w'",
    ),
    (
        "site_id: x\nstorage: {path: /tmp/x, quota: 1GB}\ncameras:\n"
        "  - {id: a, url: 'rtsp://h/1'}\n  - {id: a, url: 'rtsp://h/2'}\n",
        "duplicate camera id 'a'",
    ),
    (
        "site_id: x\nstorage: {path: /tmp/x, quota: 1GB}\ncameras:\n  - {id: a, url: 'http://h/1'}\n",
        "cameras[0].url: scheme 'http' not allowed",
    ),
    ("site_id: x\nstorage: {path: /tmp/x, quota: 1GB\n", "invalid YAML at line"),
]


@pytest.mark.parametrize(("text", "expected"), BAD_CONFIGS)
def test_bad_config_is_refused_with_the_field_and_exit_2(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    for command in (["check-config"], ["run"]):
        result = cli(*command, "--config", str(path))
        assert result.returncode == 2, result.stderr
        assert expected in result.stderr
        assert "Traceback" not in result.stderr


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    result = cli("run", "--config", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2
    assert "nope.yaml" in result.stderr and "Traceback" not in result.stderr


# -- which file a command reads without --config ------------------------------------------------

NO_VARIABLE = {"CAMERA_GATEWAY_CONFIG": ""}
"""An empty variable counts as unset (the test's own environment may have one)."""


def test_without_config_or_variable_the_installed_file_is_read_and_its_absence_said() -> None:
    if Path("/etc/camera-gateway/config.yaml").exists():
        pytest.skip("this machine has an installed configuration")
    for command in (["recordings", "list"], ["audit", "show"], ["check-config"], ["run"]):
        result = cli(*command, env=NO_VARIABLE)
        assert result.returncode == 2, (command, result.stderr)
        assert result.stderr.strip() == (
            "camera-gateway: no config: /etc/camera-gateway/config.yaml (the default; set "
            "--config or CAMERA_GATEWAY_CONFIG) does not exist"
        ), command


def test_the_variable_names_the_file_and_is_named_when_it_fails(tmp_path: Path) -> None:
    config = write_config(tmp_path / "gw.yaml", tmp_path / "rec", [_sim("hall")])
    env = {"CAMERA_GATEWAY_CONFIG": str(config)}
    checked = cli("check-config", env=env)
    assert checked.returncode == 0, checked.stderr
    assert f"{config}: valid" in checked.stdout and "camera hall:" in checked.stdout
    stopped = cli("status", env=env)  # the socket is the file's
    assert stopped.returncode == 1
    assert f"no control socket at {tmp_path / 'ctl.sock'}" in stopped.stderr

    missing = cli("recordings", "list", env={"CAMERA_GATEWAY_CONFIG": str(tmp_path / "no.yaml")})
    assert missing.returncode == 2
    assert (
        f"no config: {tmp_path / 'no.yaml'} (from $CAMERA_GATEWAY_CONFIG) does not exist"
        in missing.stderr
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text("site_id: x\nstorage: {path: /tmp/x, quota: 12XB}\n")
    refused = cli("hold", "list", env={"CAMERA_GATEWAY_CONFIG": str(bad)})
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert f"configuration error in {bad} (from $CAMERA_GATEWAY_CONFIG):" in refused.stderr
    assert "storage.quota: invalid size '12XB'" in refused.stderr


def test_config_given_on_the_command_line_wins_over_the_variable(tmp_path: Path) -> None:
    config = write_config(tmp_path / "gw.yaml", tmp_path / "rec", [_sim("hall")])
    env = {"CAMERA_GATEWAY_CONFIG": str(tmp_path / "elsewhere.yaml")}
    checked = cli("check-config", "--config", str(config), env=env)
    assert checked.returncode == 0, checked.stderr
    missing = cli("check-config", "--config", str(tmp_path / "nope.yaml"), env=env)
    assert missing.returncode == 2
    assert f"{tmp_path / 'nope.yaml'} (given with --config) does not exist" in missing.stderr


def test_check_config_summarises_a_valid_file(tmp_path: Path) -> None:
    config = write_config(tmp_path / "gw.yaml", tmp_path / "rec", [_sim("hall")])
    result = cli("check-config", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout and "camera hall: sim://hall" in result.stdout
    assert "(recorded, no sound)" in result.stdout
    assert "sound recorded from: no camera" in result.stdout


def test_check_config_names_the_cameras_that_record_sound(tmp_path: Path) -> None:
    cameras: list[dict[str, Any]] = [
        _sim("hall"),
        {**_sim("yard"), "audio": True},
        {**_sim("lift"), "audio": True},
    ]
    config = write_config(tmp_path / "gw.yaml", tmp_path / "rec", cameras)
    result = cli("check-config", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert "camera yard: sim://yard" in result.stdout and "(recorded, with sound)" in result.stdout
    assert "sound recorded from: yard, lift" in result.stdout


def test_recordings_list_and_reindex_rebuild_the_same_index(
    tmp_path: Path, gateway: StartGateway
) -> None:
    root = tmp_path / "rec"
    config = write_config(
        tmp_path / "gw.yaml", root, [_sim("hall"), _sim("yard")], storage={"segment_duration": "1s"}
    )
    gw = gateway(config)
    gw.wait_log("camera yard: online", 15)
    wait_until(lambda: len(gw.segments("yard")) >= 3, 15, "segments")

    # While the daemon runs, listing works and reindex refuses to touch its storage.
    assert len(gw.listing()["segments"]) >= 3
    busy = cli("recordings", "reindex", "--config", str(config))
    assert busy.returncode == 1 and "daemon is running" in busy.stderr
    assert gw.stop() == 0

    before = gw.listing()
    by_camera = gw.listing("--camera", "hall")
    assert {s["camera"] for s in by_camera["segments"]} == {"hall"}
    text = cli("recordings", "list", "--config", str(config))
    assert "hall:" in text.stdout and "yard:" in text.stdout and "0 gaps" in text.stdout

    # Wipe the index entirely: reindex rebuilds it from the files alone.
    db = sqlite3.connect(root / "index.sqlite3")
    db.execute("DELETE FROM segments")
    db.commit()
    db.close()
    assert gw.listing()["segments"] == []
    result = cli("recordings", "reindex", "--config", str(config))
    assert result.returncode == 0, result.stderr
    after = gw.listing()
    assert len(after["segments"]) == len(before["segments"])
    for old, new in zip(before["segments"], after["segments"], strict=True):
        assert old["path"] == new["path"]
        assert old["frames"] == new["frames"] and old["bytes"] == new["bytes"]
        assert old["start"] == new["start"]
        assert abs(old["duration"] - new["duration"]) < 0.01

    unknown = cli("recordings", "list", "--config", str(config), "--camera", "nope")
    assert unknown.returncode == 2 and "unknown camera 'nope'" in unknown.stderr


def test_since_filter_and_json_shape(tmp_path: Path, gateway: StartGateway) -> None:
    config = write_config(
        tmp_path / "gw.yaml", tmp_path / "rec", [_sim("hall")], storage={"segment_duration": "1s"}
    )
    gw = gateway(config)
    wait_until(lambda: len(gw.segments("hall")) >= 4, 20, "segments")
    assert gw.stop() == 0
    everything = gw.listing()["segments"]
    # "ago" is counted from now: so many seconds before the last segment ended, however long
    # the stop and the listing took.
    ago = (
        time.time()
        - datetime.fromisoformat(everything[-1]["end"].replace("Z", "+00:00")).timestamp()
        + 1.5
    )
    recent = gw.listing("--since", f"{ago:.3f}s")["segments"]
    assert 0 < len(recent) < len(everything)
    assert set(everything[0]) >= {
        "camera",
        "path",
        "start",
        "end",
        "duration",
        "bytes",
        "frames",
        "codec",
    }
    assert all(s["end"] >= recent[0]["start"] for s in recent)


def test_status_reads_the_running_daemon(tmp_path: Path, gateway: StartGateway) -> None:
    cameras: list[dict[str, Any]] = [_sim("hall"), {**_sim("yard"), "audio": True}]
    config = write_config(tmp_path / "gw.yaml", tmp_path / "rec", cameras)
    gw = gateway(config)
    gw.wait_log("camera yard: online", 15)
    wait_until(lambda: len(gw.segments("yard")) >= 1, 30, "a segment")
    table = cli("status", "--config", str(config))
    assert table.returncode == 0, table.stderr
    rows = {
        line.split()[0]: line for line in table.stdout.splitlines() if line[:4] in ("hall", "yard")
    }
    assert set(rows) == {"hall", "yard"}
    assert all(
        " online " in row and "h264 320x240" in row and " yes " in row for row in rows.values()
    )
    assert "storage:" in table.stdout
    document = json.loads(cli("status", "--config", str(config), "--json").stdout)
    assert [c["id"] for c in document["cameras"]] == ["hall", "yard"]
    assert [c["audio"] for c in document["cameras"]] == [False, True]
    header = next(line for line in table.stdout.splitlines() if line.startswith("camera "))
    column = header.index("sound")
    assert [rows[name][column : column + 3] for name in ("hall", "yard")] == ["no ", "yes"]
    assert gw.stop() == 0
    stopped = cli("status", "--config", str(config))
    assert stopped.returncode == 1 and "the daemon is not running" in stopped.stderr


# -- text from the daemon never reaches the terminal raw ------------------------------------------

HOSTILE = "\x1b]0;owned\x07\x1b[2J\u202egnp.exe\r\nFAKE LINE"
"""What a camera or a requester might slip in: a window-title escape, a screen clear, a bidi
override and a forged line."""


def _hostile_forward() -> dict[str, Any]:
    return {
        "mode": "on_demand",
        "state": "live",
        "error": f"centre said {HOSTILE}",
        "since": None,
        "target": f"rtmp://csu/live/{HOSTILE}",
        "session": f"s-{HOSTILE}",
        "requested_by": f"op {HOSTILE}",
        "started": None,
        "ends": "2026-11-25T18:00:00.000Z",
        "bytes_sent": 1,
        "dropped_frames": 0,
        "reconnects": 0,
    }


def _hostile_status() -> dict[str, Any]:
    return {
        "site": f"site{HOSTILE}",
        "uptime": 12.0,
        "cameras": [
            {
                "id": f"hall{HOSTILE}",
                "url": "sim://hall",
                "state": "offline",
                "since": None,
                "error": f"camera said {HOSTILE}",
                "codec": f"h264{HOSTILE}",
                "width": 320,
                "height": 240,
                "fps": 0.0,
                "bitrate_kbps": 0.0,
                "last_frame": None,
                "recording_enabled": True,
                "recording": False,
                "recording_error": f"disk {HOSTILE}",
                "segments": 0,
                "dropped_frames": {},
                "forward": _hostile_forward(),
            }
        ],
        "storage": {
            "used": 0,
            "quota": 1,
            "free": None,
            "segments": 0,
            "oldest": None,
            "evictions": {},
            "error": f"storage {HOSTILE}",
        },
    }


def _assert_no_raw_control(text: str) -> None:
    raw = sorted({f"U+{ord(c):04X}" for c in text if not c.isprintable() and c != "\n"})
    assert raw == [], f"raw characters reached the terminal: {raw}"
    assert "FAKE LINE" not in {line.strip() for line in text.splitlines()}


@pytest.fixture
def hostile_daemon(tmp_path: Path) -> Iterator[Path]:
    """A real control socket answering what a compromised camera could make the daemon say."""
    from gateway.daemon.control import ControlServer, Peer

    def handler(request: dict[str, Any], peer: Peer) -> dict[str, Any]:
        if request.get("command") == "status":
            return {"ok": True, "status": _hostile_status()}
        if request.get("action") == "stop":
            return {"ok": False, "message": f"refused {HOSTILE}"}
        return {"ok": True, "message": f"started {HOSTILE}", "session": _hostile_forward()}

    server = ControlServer(tmp_path / "hostile.sock", handler)
    server.start()
    yield server.path
    server.stop()


def test_forward_status_escapes_what_the_daemon_reports(hostile_daemon: Path) -> None:
    result = cli("forward", "status", "--socket", str(hostile_daemon))

    assert result.returncode == 0, result.stderr
    _assert_no_raw_control(result.stdout)
    assert "\\x1b]0;owned\\x07" in result.stdout and "\\u202egnp.exe" in result.stdout
    assert "asked by op \\x1b" in result.stdout
    as_json = cli("forward", "status", "--json", "--socket", str(hostile_daemon))
    _assert_no_raw_control(as_json.stdout)
    assert json.loads(as_json.stdout)[f"hall{HOSTILE}"]["requested_by"] == f"op {HOSTILE}"


def test_status_table_escapes_what_cameras_report(hostile_daemon: Path) -> None:
    for args in ([], ["--json"]):
        result = cli("status", "--socket", str(hostile_daemon), *args)

        assert result.returncode == 0, result.stderr
        _assert_no_raw_control(result.stdout)
    table = cli("status", "--socket", str(hostile_daemon)).stdout
    assert "camera said \\x1b]0;owned" in table and "! storage: storage \\x1b" in table


def test_forward_answers_and_refusals_are_escaped(hostile_daemon: Path) -> None:
    started = cli(
        "forward", "start", "--camera", "hall", "--duration", "1m", "--reason", "r",
        "--socket", str(hostile_daemon),
    )  # fmt: skip
    refused = cli(
        "forward", "stop", "--camera", "hall", "--socket", str(hostile_daemon)
    )  # fmt: skip

    assert started.returncode == 0, started.stderr
    _assert_no_raw_control(started.stdout)
    assert "target: rtmp://csu/live/\\x1b" in started.stdout
    assert refused.returncode == 1
    _assert_no_raw_control(refused.stderr)
    assert "refused: refused \\x1b]0;owned" in refused.stderr


def test_recordings_list_escapes_names_from_the_index(tmp_path: Path) -> None:
    from gateway.storage.index import Index
    from gateway.storage.record import Segment
    from gateway.storage.store import INDEX_NAME

    root = tmp_path / "rec"
    root.mkdir()
    config = write_config(tmp_path / "gw.yaml", root, [_sim("hall")])
    index = Index(root / INDEX_NAME)
    index.add(
        Segment(
            path=f"hall/2026-01-01/hall_{HOSTILE}.mp4",
            camera="hall",
            start=1767225600.0,
            end=1767225610.0,
            bytes=1000,
            frames=100,
            codec=f"h264{HOSTILE}",
            width=320,
            height=240,
            has_audio=False,
        )
    )
    index.close()

    result = cli("recordings", "list", "--config", str(config))

    assert result.returncode == 0, result.stderr
    _assert_no_raw_control(result.stdout)
    assert "h264\\x1b]0;owned" in result.stdout


def test_help_lists_the_commands_an_operator_uses_and_no_internal_one() -> None:
    result = cli("--help")
    assert result.returncode == 0
    for command in ("run", "status", "forward", "export", "verify", "hold", "audit", "key"):
        assert f"    {command} " in result.stdout, command
    assert "export-child" not in result.stdout
    assert "SUPPRESS" not in result.stdout
