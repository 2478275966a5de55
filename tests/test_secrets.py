"""Camera passwords never show: not in logs (even FFmpeg's), errors, listings or metrics."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest
import yaml
from helpers import StartCamera, StartGateway, cli, make_certificates, wait_until, write_config

pytestmark = pytest.mark.camera

PASSWORD = "Ze-S3cret:p@ss/word"
WRONG = "N0t-the-Right-one"


def test_passwords_never_appear_in_any_output(
    tmp_path: Path, cameras: StartCamera, gateway: StartGateway
) -> None:
    server = cameras(["/main:fps=15:gop=15"], auth=f"viewer:{PASSWORD}")
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "hall").write_text(PASSWORD + "\n")
    config = write_config(
        tmp_path / "gw.yaml",
        tmp_path / "rec",
        [
            # From systemd's credentials directory (LoadCredential=).
            {
                "id": "hall",
                "url": server.url("/main"),
                "username": "viewer",
                "password_file": "hall",
            },
            # From the environment, and wrong: refused by the camera.
            {
                "id": "yard",
                "url": server.url("/main"),
                "username": "viewer",
                "password": "${YARD_PASS}",
            },
        ],
        storage={"segment_duration": "2s"},
    )
    env = {"CREDENTIALS_DIRECTORY": str(credentials), "YARD_PASS": WRONG}
    gw = gateway(config, "--verbose", env=env)  # FFmpeg's own log lines included
    gw.wait_log("camera hall: online", 15)
    gw.wait_log("camera yard (rtsp://viewer:***@127.0.0.1", 15)
    assert "credentials refused by the camera" in gw.log
    wait_until(lambda: len(gw.segments("hall")) >= 2, 15, "recording with credentials")

    port = yaml.safe_load(config.read_text())["metrics"]["listen"].rsplit(":", 1)[1]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        metrics = response.read().decode()
    assert gw.stop() == 0

    outputs = {
        "log": gw.log,
        "metrics": metrics,
        "check-config": cli("check-config", "--config", str(config), env=env).stdout,
        "list": cli("recordings", "list", "--config", str(config), "--json", env=env).stdout,
    }
    for name, text in outputs.items():
        for secret in (PASSWORD, WRONG, "S3cret", "N0t-the-Right"):
            assert secret not in text, f"a password leaked into the {name} output"
    assert "rtsp://viewer:***@" in outputs["check-config"]
    # The credentials refusal is retried slowly, not in a loop that floods the log.
    assert gw.log.count("camera yard (") == 1


def test_rtsps_camera_is_recorded(
    tmp_path: Path, cameras: StartCamera, gateway: StartGateway
) -> None:
    certs = make_certificates(tmp_path / "pki", name="camera")
    server = cameras(["/secure:fps=15:gop=15"], tls=(certs["cert"], certs["key"]))
    config = write_config(
        tmp_path / "gw.yaml",
        tmp_path / "rec",
        [
            {
                "id": "lobby",
                "url": server.url("/secure", scheme="rtsps"),
                "tls": {"ca_file": str(certs["ca"])},
            }
        ],
        storage={"segment_duration": "2s"},
    )
    gw = gateway(config)
    gw.wait_log("camera lobby: online", 15)
    wait_until(lambda: len(gw.segments("lobby")) >= 2, 15, "segments over RTSPS")
    assert gw.stop() == 0
