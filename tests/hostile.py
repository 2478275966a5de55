"""The hostile test camera (``tests/support/hostile_camera.py``) as a process, its H.264 clip,
and a bare RTSP client that shows the bytes it sends."""

from __future__ import annotations

import atexit
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from helpers import ROOT, SYSTEM_PYTHON, free_port

HOSTILE_SCRIPT = ROOT / "tests" / "support" / "hostile_camera.py"
CLIP_MODES = frozenset({"good", "flood", "no-keyframe"})
"""Modes that send pictures, and so need a clip; the others are given one only if asked."""

_clip: Path | None = None


def hostile_clip() -> Path:
    """A 4 s, 640×360, 25 fps baseline H.264 clip (Annex B) with a keyframe every second.

    Made once per test session with Debian's ffmpeg, in a temporary folder removed at exit.
    """
    global _clip  # noqa: PLW0603 - one clip per session
    if _clip is None or not _clip.exists():
        directory = Path(tempfile.mkdtemp(prefix="hostile-clip-"))
        atexit.register(shutil.rmtree, directory, True)
        path = directory / "clip.h264"
        subprocess.run(
            [
                "ffmpeg",
                "-v",
                "error",
                "-f",
                "lavfi",
                "-i",
                "testsrc=size=640x360:rate=25",
                "-t",
                "4",
                "-c:v",
                "libx264",
                "-g",
                "25",
                "-keyint_min",
                "25",
                "-sc_threshold",
                "0",
                "-bf",
                "0",
                "-profile:v",
                "baseline",
                "-pix_fmt",
                "yuv420p",
                "-f",
                "h264",
                str(path),
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        _clip = path
    return _clip


class HostileCamera:
    """The hostile RTSP server in one ``mode``, logging to ``log_dir``.

    ``clip``: the H.264 stream to serve; by default the session's clip for the modes that send
    pictures (and with ``good_first``), and none (built-in parameter sets) for the others.
    ``rate``: bytes per second on the wire (None: the mode's default). ``good_first``: seconds
    of the clip played before the misbehaviour starts. ``python``: the interpreter (the system
    one if present). The other arguments are the server's options of the same name.
    """

    def __init__(
        self,
        mode: str,
        log_dir: Path,
        *,
        port: int | None = None,
        clip: Path | None = None,
        rate: float | None = None,
        path: str = "/stream",
        fps: float | None = None,
        packet_size: int | None = None,
        good_first: float | None = None,
        python: str | None = None,
    ) -> None:
        self.mode = mode
        self.port = port or free_port()
        needs_clip = mode in CLIP_MODES or bool(good_first)
        self.clip = clip if clip is not None or not needs_clip else hostile_clip()
        self.good_first = good_first
        self.rate = rate
        self.path = path
        self.fps = fps
        self.packet_size = packet_size
        self.python = python or (SYSTEM_PYTHON if Path(SYSTEM_PYTHON).exists() else sys.executable)
        self.log_path = log_dir / f"hostile-{mode}-{self.port}.log"
        self.proc: subprocess.Popen[str] | None = None

    def command(self) -> list[str]:
        cmd = [self.python, str(HOSTILE_SCRIPT), "--port", str(self.port), "--mode", self.mode]
        cmd += ["--path", self.path]
        if self.clip is not None:
            cmd += ["--clip", str(self.clip)]
        if self.rate is not None:
            cmd += ["--rate", str(self.rate)]
        if self.fps is not None:
            cmd += ["--fps", str(self.fps)]
        if self.packet_size is not None:
            cmd += ["--packet-size", str(self.packet_size)]
        if self.good_first:
            cmd += ["--good-first", str(self.good_first)]
        return cmd

    def start(self, timeout: float = 10.0) -> HostileCamera:
        with self.log_path.open("a") as log:
            self.proc = subprocess.Popen(
                self.command(), stdout=subprocess.PIPE, stderr=log, text=True
            )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if line.startswith("READY"):
                return self
            if not line and self.proc.poll() is not None:
                break
        self.stop()
        raise RuntimeError(f"hostile camera did not start: {self.log}")

    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}{self.path}"

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 5 s; safe to call on a server that never started."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


StartHostile = Callable[..., HostileCamera]
"""The ``hostile(mode, **options)`` fixture (tests/conftest.py): a started hostile camera."""


class RawRtspClient:
    """A bare RTSP client over one TCP connection: sends requests, returns raw replies."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        host, port = url.split("://", 1)[1].split("/", 1)[0].split(":")
        self.url = url
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.cseq = 0
        self.buffer = b""
        self.session = ""

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawRtspClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def send(self, method: str, url: str | None = None, headers: tuple[str, ...] = ()) -> None:
        self.cseq += 1
        lines = [f"{method} {url or self.url} RTSP/1.0", f"CSeq: {self.cseq}"]
        if self.session:
            lines.append(f"Session: {self.session}")
        lines += headers
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())

    def read_head(self, limit: int = 65536) -> tuple[str, dict[str, str]]:
        """The next reply's status line and headers (names lower-cased); its body stays."""
        while b"\r\n\r\n" not in self.buffer:
            if len(self.buffer) > limit:
                raise AssertionError(f"no end of reply head in {len(self.buffer)} bytes")
            self._more()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        status, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return status, headers

    def request(
        self, method: str, url: str | None = None, headers: tuple[str, ...] = ()
    ) -> tuple[str, dict[str, str], bytes]:
        self.send(method, url, headers)
        status, reply = self.read_head()
        body = self.read_exactly(int(reply.get("content-length", "0")))
        if "session" in reply:
            self.session = reply["session"].split(";")[0]
        return status, reply, body

    def play(self) -> dict[str, str]:
        """OPTIONS, DESCRIBE, SETUP (interleaved 0-1), PLAY; returns the PLAY reply's headers."""
        for method in ("OPTIONS", "DESCRIBE"):
            status, _, _ = self.request(method, headers=("Accept: application/sdp",))
            assert status == "RTSP/1.0 200 OK", f"{method}: {status}"
        transport = "Transport: RTP/AVP/TCP;unicast;interleaved=0-1"
        status, _, _ = self.request("SETUP", f"{self.url}/trackID=0", (transport,))
        assert status == "RTSP/1.0 200 OK", f"SETUP: {status}"
        status, headers, _ = self.request("PLAY", headers=("Range: npt=0.000-",))
        assert status == "RTSP/1.0 200 OK", f"PLAY: {status}"
        return headers

    def _more(self) -> int:
        data = self.sock.recv(262144)
        if not data:
            raise ConnectionError("the server closed the connection")
        self.buffer += data
        return len(data)

    def read_exactly(self, n: int) -> bytes:
        while len(self.buffer) < n:
            self._more()
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def frame(self) -> tuple[int, bytes]:
        """The next interleaved ``$`` frame: (channel, payload)."""
        header = self.read_exactly(4)
        assert header[:1] == b"$", f"not an interleaved frame: {header!r}"
        return header[1], self.read_exactly(int.from_bytes(header[2:4], "big"))

    def count_bytes(self, seconds: float) -> int:
        """Bytes received during ``seconds`` (what was already buffered not counted)."""
        self.buffer = b""
        total = 0
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(262144)
            except TimeoutError:
                break
            if not data:
                break
            total += len(data)
        return total
