"""The programs the demo runs beside the daemon, on loopback: a centre (FFmpeg listening for
RTMP) and a broker (mosquitto). Each is optional: one that cannot start is said in one line and
the demo goes on without it. Every one is stopped when the demo ends, however it ends: by
:meth:`DemoParts.stop`, and by the kernel should the demo itself be killed (``PDEATHSIG``).
"""

from __future__ import annotations

import logging
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gateway.host.libc import libc

__all__ = ["MQTT_PORT", "DemoParts", "Part"]

log = logging.getLogger("gateway.demo")

MQTT_PORT = 1883
"""The broker's usual port, taken when free (a broker already there keeps it)."""
START_WAIT = 5.0
"""Seconds a part has to listen on its port."""
STOP_WAIT = 3.0
"""Seconds a part has to exit after SIGTERM before SIGKILL."""
_PR_SET_PDEATHSIG = 1
_LISTEN = "0A"
"""TCP_LISTEN in /proc/net/tcp."""


def free_port(preferred: int | None = None) -> int:
    """``preferred`` when nothing holds it on loopback, else a port the kernel picks."""
    for port in (preferred, 0) if preferred else (0,):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(probe.getsockname()[1])
    raise OSError("no free port on 127.0.0.1")


def listening(port: int) -> bool:
    """Whether something listens on TCP ``port``, without connecting (a connection would use up
    an ``ffmpeg -listen 1``)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, encoding="ascii") as rows:
                for row in rows.readlines()[1:]:
                    fields = row.split()
                    if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == _LISTEN:
                        return True
        except OSError:
            continue
    return False


def _death_signal() -> Callable[[], None] | None:
    """A child's pre-exec step asking for SIGTERM when the demo dies; resolved beforehand, so
    that the forked child only makes the one call."""
    lib = libc()
    if lib is None:
        return None
    prctl = lib.prctl

    def ask() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)

    return ask


@dataclass
class Part:
    """One program the demo runs: what it is, its port, its process."""

    name: str
    what: str
    command: list[str]
    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    pids: list[int] = field(default_factory=list)

    def start(self) -> str | None:
        """Start it and wait for it to listen; None, or why it did not start."""
        with self.log_path.open("ab") as log_file:
            self.process = subprocess.Popen(  # noqa: S603 - a program found on PATH, our arguments
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
                start_new_session=True,  # Ctrl-C reaches the demo, which stops it in order
                # The function only makes one resolved libc call: safe however many threads run.
                preexec_fn=_death_signal(),  # noqa: PLW1509
            )
        self.pids.append(self.process.pid)
        deadline = time.monotonic() + START_WAIT
        while not listening(self.port):
            if self.process.poll() is not None:
                return f"it exited ({self.last_words()})"
            if time.monotonic() > deadline:
                self.stop()
                return f"it did not listen on 127.0.0.1:{self.port} within {START_WAIT:.0f} s"
            time.sleep(0.05)
        return None

    def last_words(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            lines = []
        return lines[-1][:200] if lines else f"exit status {self.process_status()}"

    def process_status(self) -> int | None:
        return None if self.process is None else self.process.poll()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after :data:`STOP_WAIT`; reaped either way."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(STOP_WAIT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class DemoParts:
    """The centre and the broker of a demo, their files in ``runtime`` (a private folder)."""

    def __init__(self, runtime: Path) -> None:
        self.runtime = runtime
        self.centre: Part | None = None
        self.broker: Part | None = None
        self._centre_lost = False

    def start_centre(self, camera_id: str, path: str) -> int | None:
        """FFmpeg listening for one RTMP publisher at ``path`` (discarding what it receives):
        its port, or None once said why not."""
        ffmpeg = shutil.which("ffmpeg")
        if ffmpeg is None:
            log.warning(
                "demo: no centre: ffmpeg is not on PATH (apt-get install ffmpeg); no forward, "
                "the rest goes on"
            )
            return None
        port = free_port()
        url = f"rtmp://127.0.0.1:{port}{path.format(camera_id=camera_id)}"
        command = [ffmpeg, "-nostdin", "-v", "error", "-listen", "1", "-i", url]
        command += ["-c", "copy", "-f", "null", "-"]
        part = Part("centre", url, command, port, self.runtime / "centre.log")
        problem = part.start()
        if problem is not None:
            log.warning("demo: no centre: ffmpeg on %s did not start: %s", url, problem)
            return None
        log.info("demo: centre listening on %s (ffmpeg, pid %d)", url, part.pids[-1])
        self.centre = part
        return port

    def start_broker(self) -> int | None:
        """mosquitto on loopback, anonymous, nothing kept on disk: its port, or None once said
        why not."""
        mosquitto = shutil.which("mosquitto")
        if mosquitto is None:
            log.warning(
                "demo: no MQTT: mosquitto is not on PATH (apt-get install mosquitto; Debian puts "
                "it in /usr/sbin); the status is not published, the rest goes on"
            )
            return None
        port = free_port(MQTT_PORT)
        conf = self.runtime / "mosquitto.conf"
        conf.write_text(
            f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n",
            encoding="utf-8",
        )
        part = Part("broker", f"127.0.0.1:{port}", [mosquitto, "-c", str(conf)], port,
                    self.runtime / "mosquitto.log")  # fmt: skip
        problem = part.start()
        if problem is not None:
            log.warning("demo: no MQTT: mosquitto on 127.0.0.1:%d did not start: %s", port, problem)
            return None
        log.info("demo: MQTT broker on 127.0.0.1:%d (mosquitto, pid %d)", port, part.pids[-1])
        self.broker = part
        return port

    def tick(self) -> None:
        """Once a second: a centre that ended with its publisher listens again, so that a new
        ``forward start`` finds it; one that failed is said once and left."""
        centre = self.centre
        if centre is None or centre.running or self._centre_lost:
            return
        if centre.process_status() != 0:
            self._centre_lost = True
            log.warning("demo: the centre ended (%s); forwards now fail", centre.last_words())
            return
        problem = centre.start()
        if problem is not None:
            self._centre_lost = True
            log.warning("demo: the centre could not listen again: %s", problem)
        else:
            log.info("demo: centre listening again (ffmpeg, pid %d)", centre.pids[-1])

    def lines(self) -> list[str]:
        """What the status table's footer says of each part."""
        out = []
        if self.centre is not None:
            state = "lost" if self._centre_lost else "listening"
            out.append(f"centre: ffmpeg {state} on {self.centre.what}")
        if self.broker is not None:
            port = self.broker.port
            out.append(
                f"mqtt: mosquitto on 127.0.0.1:{port} · watch it: "
                f"mosquitto_sub -h 127.0.0.1 -p {port} -v -t 'camera-gateway/#'"
            )
        return out

    def stop(self) -> None:
        """Stop every part still running (the broker last: it carries the daemon's goodbye)."""
        for part in (self.centre, self.broker):
            if part is not None:
                part.stop()
        shutil.rmtree(self.runtime, ignore_errors=True)
