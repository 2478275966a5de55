"""Cameras that go away, go silent, or never answer: detected quickly, recorded again quickly."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest
from helpers import (
    StartCamera,
    StartGateway,
    alive,
    decode_errors,
    descendants,
    free_port,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.camera


def _iso(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_camera_killed_and_restarted_gap_is_outage_plus_at_most_2s(
    tmp_path: Path, cameras: StartCamera, gateway: StartGateway
) -> None:
    server = cameras(["/cam:fps=25:gop=25"])
    config = write_config(
        tmp_path / "gw.yaml", tmp_path / "rec", [{"id": "door", "url": server.url("/cam")}]
    )
    gw = gateway(config)
    gw.wait_log("camera door: online", 15)
    wait_until(lambda: gw.segments("door"), 15, "a first segment")

    killed = time.time()
    server.kill()
    gw.wait_log("camera door (rtsp://127.0.0.1", 5)  # offline warning names the camera's URL
    time.sleep(3.0)
    cameras(server.mounts, port=server.port)  # the fixture stops it, whatever happens
    back = time.time()
    outage = back - killed
    gw.wait_log("camera door: online again", 10)
    wait_until(lambda: len(gw.listing()["segments"]) >= 3, 15, "segments after the restart")
    assert gw.stop() == 0

    listing = gw.listing()
    gaps = listing["gaps"]
    assert len(gaps) == 1, gaps
    gap = gaps[0]["duration"]
    assert outage - 0.5 <= gap <= outage + 2.0, f"gap {gap:.2f} s for an outage of {outage:.2f} s"
    first_after = min(_iso(s["start"]) for s in listing["segments"] if _iso(s["start"]) > killed)
    print(
        f"\noutage {outage:.2f} s, gap {gap:.2f} s, "
        f"back on record {first_after - back:.2f} s after the camera answered"
    )
    for path in gw.segments("door"):
        assert decode_errors(path) == ""


def test_silent_camera_is_detected_within_5s_and_recording_resumes(
    tmp_path: Path, cameras: StartCamera, gateway: StartGateway
) -> None:
    server = cameras(["/cam:fps=25:gop=25"])
    config = write_config(
        tmp_path / "gw.yaml", tmp_path / "rec", [{"id": "porch", "url": server.url("/cam")}]
    )
    gw = gateway(config)
    gw.wait_log("camera porch: online", 15)
    time.sleep(2)
    server.pause()  # TCP stays open, no more data: a hung camera
    paused = time.monotonic()
    gw.wait_log("offline: no data for", 8)
    detected = time.monotonic() - paused
    print(f"\nsilence detected after {detected:.1f} s")
    assert detected <= 5.0, f"silence detected after {detected:.1f} s"
    # the camera is told offline first, then its open segment is finalised at the gap
    wait_until(
        lambda: gw.segments("porch", partial=True) == [], 2, "the open segment finalised at the gap"
    )
    server.resume()
    gw.wait_log("camera porch: online again", 15)
    count = len(gw.segments("porch"))
    wait_until(lambda: len(gw.segments("porch")) > count, 15, "recording to resume")
    assert gw.stop() == 0


class SilentCamera:
    """Accepts RTSP connections and never answers; with ``trickle``, sends a byte every 0.5 s
    without ever ending a line, so the client's read timeout never fires either."""

    def __init__(self, *, trickle: bool = False) -> None:
        self.port = free_port()
        self._trickle = trickle
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", self.port))
        self._listener.listen(8)
        self._listener.settimeout(0.2)
        self._accepted: list[socket.socket] = []
        self.first_accepted: float | None = None
        """``time.monotonic()`` when the first connection came in."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/stream"

    def _serve(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                self._accepted.append(self._listener.accept()[0])
                if self.first_accepted is None:
                    self.first_accepted = time.monotonic()
            if self._trickle:
                for conn in self._accepted:
                    with contextlib.suppress(OSError):
                        conn.send(b"R")
                self._stop.wait(0.3)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._listener.close()
        for conn in self._accepted:
            conn.close()


StartSilent = Callable[..., SilentCamera]
"""The ``silent_camera(*, trickle=False)`` fixture: a :class:`SilentCamera`, closed at teardown."""


@pytest.fixture
def silent_camera() -> Iterator[StartSilent]:
    made: list[SilentCamera] = []

    def make(*, trickle: bool = False) -> SilentCamera:
        made.append(SilentCamera(trickle=trickle))
        return made[-1]

    yield make
    for camera in made:
        camera.close()


def test_camera_that_accepts_but_never_answers_is_reported_offline(
    tmp_path: Path, gateway: StartGateway, silent_camera: StartSilent
) -> None:
    camera = silent_camera()
    config = write_config(
        tmp_path / "gw.yaml", tmp_path / "rec", [{"id": "mute", "url": camera.url}]
    )
    gw = gateway(config)
    gw.wait_log("camera mute (rtsp://127.0.0.1", 20)
    assert camera.first_accepted is not None
    # Timed from the camera's side, so a slow start-up on a loaded machine does not count.
    waited = time.monotonic() - camera.first_accepted
    print(f"\nreported offline {waited:.1f} s after the connection")
    assert waited < 7.5, f"given up within the 5 s open timeout, not after {waited:.1f} s"
    assert "offline: no data for" in gw.log
    # The retry is now inside FFmpeg's connection attempt: the stop must still be clean.
    assert gw.stop() == 0
    assert "stopped in" in gw.log


def test_stop_during_a_slow_first_connection_does_not_wait_for_it(
    tmp_path: Path, gateway: StartGateway, silent_camera: StartSilent
) -> None:
    """A camera that trickles bytes holds the connection attempt for the whole open timeout (5 s);
    SIGTERM at start-up must neither wait for it nor leave its worker process behind."""
    camera = silent_camera(trickle=True)
    config = write_config(
        tmp_path / "gw.yaml", tmp_path / "rec", [{"id": "slow", "url": camera.url}]
    )
    gw = gateway(config)
    gw.wait_log("site test-site:", 12)
    worker = wait_until(lambda: gw.workers().get("slow"), 10, "the camera's worker")
    assert gw.proc is not None
    tree = descendants(gw.proc.pid)
    stopping = time.monotonic()
    assert gw.stop() == 0
    took = time.monotonic() - stopping
    print(f"\nstopped {took:.1f} s after SIGTERM")
    assert took < 4.0, f"the stop waited {took:.1f} s for the connection attempt"
    assert worker in tree
    assert not [pid for pid in tree if alive(pid)], "a process of the daemon outlived it"
    assert "stopped in" in gw.log
