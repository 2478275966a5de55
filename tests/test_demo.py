"""`camera-gateway demo`, the embedded default behind `make demo`."""

from __future__ import annotations

from pathlib import Path

from helpers import cli, decode_errors, free_port

from gateway.daemon.demo import DEMO_CAMERAS


def test_demo_records_four_simulated_cameras_and_shows_their_status(tmp_path: Path) -> None:
    port = free_port()
    result = cli(
        "demo",
        "--dir",
        str(tmp_path / "demo"),
        "--duration",
        "12s",
        "--metrics",
        f"127.0.0.1:{port}",
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    table = result.stdout.split("camera-gateway · site demo")[-1]
    for camera in DEMO_CAMERAS:
        row = next(line for line in table.splitlines() if line.startswith(camera))
        assert " online " in row and "h264 640x360" in row, row
        segments = sorted((tmp_path / "demo" / camera).rglob("*.mp4"))
        assert len(segments) >= 2, camera
        assert decode_errors(segments[0]) == ""
    assert "storage:" in table and "of 22.9 MiB" in table
    assert f"metrics on 127.0.0.1:{port}" in result.stdout
