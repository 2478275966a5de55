"""The command line as a user meets it: clear errors, exit codes, listings, reindex."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from helpers import cli, wait_until, write_config


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


def test_check_config_summarises_a_valid_file(tmp_path: Path) -> None:
    config = write_config(tmp_path / "gw.yaml", tmp_path / "rec", [_sim("hall")])
    result = cli("check-config", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout and "camera hall: sim://hall" in result.stdout


def test_recordings_list_and_reindex_rebuild_the_same_index(tmp_path: Path, gateway) -> None:
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


def test_since_filter_and_json_shape(tmp_path: Path, gateway) -> None:
    config = write_config(
        tmp_path / "gw.yaml", tmp_path / "rec", [_sim("hall")], storage={"segment_duration": "1s"}
    )
    gw = gateway(config)
    wait_until(lambda: len(gw.segments("hall")) >= 4, 20, "segments")
    assert gw.stop() == 0
    everything = gw.listing()["segments"]
    recent = gw.listing("--since", "1.5s")["segments"]
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


def test_status_reads_the_running_daemon(tmp_path: Path, gateway) -> None:
    config = write_config(tmp_path / "gw.yaml", tmp_path / "rec", [_sim("hall"), _sim("yard")])
    gw = gateway(config)
    gw.wait_log("camera yard: online", 15)
    wait_until(lambda: len(gw.segments("yard")) >= 1, 15, "a segment")
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
    assert gw.stop() == 0
    stopped = cli("status", "--config", str(config))
    assert stopped.returncode == 1 and "the daemon is not running" in stopped.stderr
