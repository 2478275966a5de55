"""Cameras over rtsps:// are verified before they are sent a request, and so the password.

Against real parts: the GStreamer RTSP server as the camera (with its own TLS), FFmpeg's RTSP
client through the loopback relay, the daemon as a process, and openssl for certificates and
pins.
"""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import pytest
from helpers import (
    ROOT,
    CameraServer,
    StartCamera,
    StartCentre,
    StartGateway,
    make_certificates,
    spki_pin,
    wait_until,
    write_config,
)

from gateway.config import CameraConfig
from gateway.source import SourceError, open_source

pytestmark = pytest.mark.camera

PASSWORD = "Cam3ra-pa55word"
OTHER_PIN = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
REQUEST_SEEN = "auth.check.url"
"""What GStreamer's RTSPAuth logs (GST_DEBUG=rtspauth:5) for every request it receives."""
CONNECTION_SEEN = "auth.check.connect"
"""What it logs for every TCP connection, before any TLS."""


def self_signed(directory: Path, name: str = "selfcam") -> tuple[Path, Path]:
    """A camera's own certificate, as most ship: self-signed, for 127.0.0.1."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def signed_for(certs: dict[str, Path], names: str, directory: Path) -> tuple[Path, Path]:
    """A certificate from the test CA of :func:`make_certificates` for ``names`` only."""
    cert, key, csr = directory / "moved.pem", directory / "moved.key", directory / "moved.csr"
    ext = directory / "moved.ext"
    ext.write_text(f"subjectAltName={names}\n")
    ca_key = certs["ca"].with_suffix(".key")
    request = ["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1"]
    sign = ["x509", "-req", "-CA", str(certs["ca"]), "-CAkey", str(ca_key), "-CAcreateserial"]
    for args in (
        [*request, "-keyout", str(key), "-out", str(csr)],
        [*sign, "-days", "1", "-in", str(csr), "-extfile", str(ext), "-out", str(cert)],
    ):
        subprocess.run(["openssl", *args], check=True, capture_output=True)
    return cert, key


def camera_config(url: str, **fields: object) -> CameraConfig:
    return CameraConfig.model_validate(
        {"id": "cam", "url": url, "username": "viewer", "password": PASSWORD, **fields}
    )


def relay_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.endswith("/tls")]


@pytest.fixture
def logged_camera(
    tmp_path: Path, cameras: StartCamera, monkeypatch: pytest.MonkeyPatch
) -> StartCamera:
    """Start a camera that logs every connection and every RTSP request it receives."""

    def start(tls: tuple[Path, Path], **kwargs: object) -> CameraServer:
        monkeypatch.setenv("GST_DEBUG", "rtspauth:5")
        try:
            return cameras(["/main:fps=15:gop=15"], tls=tls, **kwargs)
        finally:
            monkeypatch.delenv("GST_DEBUG")

    return start


def test_an_untrusted_camera_is_refused_before_any_request(
    tmp_path: Path, logged_camera: StartCamera
) -> None:
    cert, key = self_signed(tmp_path / "pki")
    server = logged_camera((cert, key), auth=f"viewer:{PASSWORD}")
    url = server.url("/main", scheme="rtsps")

    for tls, reason in [
        (None, "TLS: camera certificate not trusted (self-signed certificate)"),
        ({"pin_sha256": [OTHER_PIN]}, "TLS: camera key does not match the pinned key (got "),
    ]:
        source = open_source(camera_config(url, **({"tls": tls} if tls else {})))
        with pytest.raises(SourceError) as caught:
            source.open()
        source.close()
        assert caught.value.reason.startswith(reason)
        assert caught.value.auth, "retried slowly, like refused credentials"
    time.sleep(0.5)  # let the camera write its log
    assert REQUEST_SEEN not in server.log_path.read_text(), "the camera was sent a request"

    # The same camera, trusted by its key: the log shows requests once they are made.
    source = open_source(camera_config(url, tls={"pin_sha256": [spki_pin(cert)]}))
    try:
        source.open()
        source.read()
    finally:
        source.close()
    wait_until(lambda: REQUEST_SEEN in server.log_path.read_text(), 5, "the camera's request log")
    assert "check Basic auth" in server.log_path.read_text()


def test_each_way_of_trusting_a_camera(tmp_path: Path, cameras: StartCamera) -> None:
    certs = make_certificates(tmp_path / "pki", name="camera")
    server = cameras(
        ["/main:fps=15:gop=15"], auth=f"viewer:{PASSWORD}", tls=(certs["cert"], certs["key"])
    )
    url = server.url("/main", scheme="rtsps")
    accepted = {
        "ca_file": {"ca_file": str(certs["ca"])},
        "pin, no CA": {"pin_sha256": [spki_pin(certs["cert"])]},
        "CA and pin": {"ca_file": str(certs["ca"]), "pin_sha256": [spki_pin(certs["cert"])]},
        "insecure": {"insecure": True},
    }
    for name, tls in accepted.items():
        source = open_source(camera_config(url, tls=tls))
        try:
            tracks = source.open()
            packets = [source.read() for _ in range(20)]
        finally:
            source.close()
        assert tracks[0].codec == "h264", name
        assert any(p.keyframe for p in packets), name
    refused = {
        "system CAs": (None, "TLS: camera certificate not trusted (unable to get local issuer"),
        "CA, wrong pin": (
            {"ca_file": str(certs["ca"]), "pin_sha256": [OTHER_PIN]},
            "TLS: camera key does not match the pinned key",
        ),
    }
    for name, (tls, reason) in refused.items():
        source = open_source(camera_config(url, **({"tls": tls} if tls else {})))
        with pytest.raises(SourceError) as caught:
            source.open()
        source.close()
        assert caught.value.reason.startswith(reason), name
    assert relay_threads() == [], "a relay thread outlived its source"


def test_the_address_in_the_url_must_be_in_the_certificate(
    tmp_path: Path, cameras: StartCamera
) -> None:
    certs = make_certificates(tmp_path / "pki", name="camera")  # for 127.0.0.1 and localhost
    server = cameras(["/main:fps=15:gop=15"], tls=(certs["cert"], certs["key"]))
    by_name = server.url("/main", scheme="rtsps").replace("127.0.0.1", "localhost")
    source = open_source(camera_config(by_name, tls={"ca_file": str(certs["ca"])}))
    try:
        source.open()
    finally:
        source.close()

    # Signed by the right CA, named 127.0.0.1, but for another address: refused. An address is
    # matched against the certificate's IP entries only, never its common name.
    elsewhere = signed_for(certs, "IP:10.9.9.9", tmp_path / "pki")
    moved = cameras(["/main:fps=15:gop=15"], tls=elsewhere)
    source = open_source(
        camera_config(moved.url("/main", scheme="rtsps"), tls={"ca_file": str(certs["ca"])})
    )
    with pytest.raises(SourceError) as caught:
        source.open()
    source.close()
    assert caught.value.reason == (
        "TLS: camera certificate not trusted "
        "(IP address mismatch, certificate is not valid for '127.0.0.1'.)"
    )


def test_digest_authentication_through_the_relay(
    tmp_path: Path, cameras: StartCamera, monkeypatch: pytest.MonkeyPatch
) -> None:
    import helpers

    # FFmpeg hashes the relay's URL into its Digest answers; the camera must accept them.
    monkeypatch.setattr(helpers, "CAMERA_SCRIPT", ROOT / "tests" / "support" / "digest_camera.py")
    cert, key = self_signed(tmp_path / "pki")
    monkeypatch.setenv("GST_DEBUG", "rtspauth:5")
    server = cameras(["/main:fps=15:gop=15"], auth=f"viewer:{PASSWORD}", tls=(cert, key))
    monkeypatch.delenv("GST_DEBUG")
    url = server.url("/main", scheme="rtsps")
    pinned = {"pin_sha256": [spki_pin(cert)]}
    source = open_source(camera_config(url, tls=pinned))
    try:
        tracks = source.open()
        source.read()
    finally:
        source.close()
    assert tracks[0].codec == "h264"
    assert "check Digest auth" in server.log_path.read_text()

    wrong = open_source(camera_config(url, tls=pinned, password="not-the-password"))
    with pytest.raises(SourceError) as caught:
        wrong.open()
    wrong.close()
    assert caught.value.reason == "credentials refused by the camera (401/403)"


def test_the_relay_ends_with_its_source_and_when_the_camera_goes(
    tmp_path: Path, cameras: StartCamera
) -> None:
    certs = make_certificates(tmp_path / "pki", name="camera")
    server = cameras(["/main:fps=15:gop=15"], tls=(certs["cert"], certs["key"]))
    camera = camera_config(server.url("/main", scheme="rtsps"), tls={"ca_file": str(certs["ca"])})
    source = open_source(camera)
    source.open()
    source.read()
    source.close()
    assert relay_threads() == []

    source = open_source(camera)
    source.open()
    source.read()
    assert relay_threads() == ["cam/tls"]
    server.kill()
    with pytest.raises(SourceError):
        for _ in range(1000):
            source.read()
    source.close()
    assert relay_threads() == []


def test_the_daemon_records_the_cameras_it_trusts_and_refuses_the_others(
    tmp_path: Path, cameras: StartCamera, gateway: StartGateway, logged_camera: StartCamera
) -> None:
    own_cert, own_key = self_signed(tmp_path / "own")
    untrusted = logged_camera((own_cert, own_key), auth=f"viewer:{PASSWORD}")
    certs = make_certificates(tmp_path / "pki", name="camera")
    trusted = cameras(
        ["/main:fps=15:gop=15"], auth=f"viewer:{PASSWORD}", tls=(certs["cert"], certs["key"])
    )

    def camera(camera_id: str, server: CameraServer, **tls: object) -> dict[str, object]:
        entry: dict[str, object] = {
            "id": camera_id,
            "url": server.url("/main", scheme="rtsps"),
            "username": "viewer",
            "password": PASSWORD,
        }
        return {**entry, "tls": tls} if tls else entry

    config = write_config(
        tmp_path / "gw.yaml",
        tmp_path / "rec",
        [
            camera("own", untrusted),
            camera("wrongpin", untrusted, pin_sha256=[spki_pin(certs["cert"])]),
            camera("byca", trusted, ca_file=str(certs["ca"])),
            camera("bypin", trusted, pin_sha256=[spki_pin(certs["cert"])]),
            camera("insecure", trusted, insecure=True),
        ],
        storage={"segment_duration": "2s"},
    )
    config.chmod(0o644)
    gw = gateway(config)
    recorded = ("byca", "bypin", "insecure")
    for camera_id in recorded:
        gw.wait_log(f"camera {camera_id}: online", 20)
    wait_until(
        lambda: all(len(gw.segments(c)) >= 2 for c in recorded), 20, "segments of each camera"
    )
    refusals = {
        "own": "offline: TLS: camera certificate not trusted (self-signed certificate)",
        "wrongpin": "offline: TLS: camera key does not match the pinned key (got ",
    }

    # Each refused camera connects again (GStreamer logs every connection), slowly and quietly.
    def connections() -> int:
        return untrusted.log_path.read_text().count(CONNECTION_SEEN)

    wait_until(lambda: connections() >= 4, 15, "the refused cameras to try again")
    for camera_id, reason in refusals.items():
        gw.wait_log(reason, 5)
        [line] = [line for line in gw.log.splitlines() if reason in line]  # once, then quiet
        assert f"camera {camera_id} (" in line
    assert (
        "cameras[4] (insecure): TLS verification is off (tls.insecure): anyone on the LAN can "
        "impersonate the camera and receive its password" in gw.log
    )
    assert f"{config}: holds passwords in clear (cameras[0].password, cameras[1].password" in gw.log
    assert gw.stop() == 0

    log = untrusted.log_path.read_text()
    assert REQUEST_SEEN not in log, "a camera that failed the checks was sent a request"
    assert PASSWORD not in gw.log


def test_a_substream_over_rtsps_is_checked_like_its_camera(
    tmp_path: Path, cameras: StartCamera, centre: StartCentre, gateway: StartGateway
) -> None:
    certs = make_certificates(tmp_path / "pki", name="camera")
    server = cameras(
        ["/main:fps=15:gop=15:width=640:height=360", "/sub:fps=10:gop=10:width=320:height=180"],
        auth=f"viewer:{PASSWORD}",
        tls=(certs["cert"], certs["key"]),
    )
    receiver = centre(["/res-0042/hall-a"])
    config = write_config(
        tmp_path / "gw.yaml",
        tmp_path / "rec",
        [
            {
                "id": "hall-a",
                "url": server.url("/main", scheme="rtsps"),
                "forward_url": server.url("/sub", scheme="rtsps"),
                "username": "viewer",
                "password_file": str(tmp_path / "hall-a.password"),
                "tls": {"pin_sha256": [spki_pin(certs["cert"])]},
            }
        ],
        site_id="res-0042",
        uplink={"url": receiver.url()},
        storage={"segment_duration": "2s"},
    )
    (tmp_path / "hall-a.password").write_text(PASSWORD)
    gw = gateway(config)
    gw.wait_log("camera hall-a: online", 15)
    started = gw.forward("start", "--camera", "hall-a", "--duration", "4s", "--reason", "test")
    assert started.returncode == 0, started.stderr
    gw.wait_log("camera hall-a (forward substream): online (h264 320x180)", 15)
    wait_until(receiver.files, 15, "the centre to receive the substream")
    assert gw.stop() == 0
