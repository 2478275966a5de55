"""A real RTSP camera whose picture the test switches while it streams (covered, defocused,
turned, privacy mask gone): ``tests/support/tamper_camera.py`` under the system Python, driven
through its stdin.

    with TamperCamera(tmp_path).start() as camera:
        camera.set_mode("black")  # returns once the camera's frames are black
        ... camera.url ...

(Named ``tamper``, not ``tamper_camera``: some test modules put ``tests/support`` first on
``sys.path``, where the camera script of that name would be imported instead.)
"""

from __future__ import annotations

import queue
import subprocess
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from types import TracebackType
from typing import IO, Final

from helpers import ROOT, SYSTEM_PYTHON, free_port

__all__ = ["MASK", "MODES", "SCRIPT", "TamperCamera"]

SCRIPT: Final = ROOT / "tests" / "support" / "tamper_camera.py"
MODES: Final = ("normal", "black", "blur", "shift", "unmask")
MASK: Final = (0.70, 0.15, 0.90, 0.45)
"""The privacy mask, ``x0, y0, x1, y1`` in normalised picture coordinates."""


class TamperCamera:
    """The tamper camera as a process: one shared mount, ``/cam``; stderr goes to a log file
    in ``log_dir``."""

    def __init__(
        self,
        log_dir: Path,
        *,
        port: int | None = None,
        width: int = 640,
        height: int = 360,
        fps: int = 10,
        gop: int = 10,
        shift: float = 15.0,
    ) -> None:
        self.port = port or free_port()
        self.width, self.height, self.fps, self.gop, self.shift = width, height, fps, gop, shift
        self.log_path = log_dir / f"tamper-camera-{self.port}.log"
        self.mode = "normal"
        self.proc: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/cam"

    def start(self, timeout: float = 15.0) -> TamperCamera:
        cmd = [
            SYSTEM_PYTHON,
            str(SCRIPT),
            "--port",
            str(self.port),
            "--mount",
            "/cam",
            "--width",
            str(self.width),
            "--height",
            str(self.height),
            "--fps",
            str(self.fps),
            "--gop",
            str(self.gop),
            "--shift",
            str(self.shift),
            "--mask",
            ",".join(str(v) for v in MASK),
        ]
        with self.log_path.open("a") as log:
            self.proc = subprocess.Popen(
                cmd,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                bufsize=1,
            )
        assert self.proc.stdout is not None
        threading.Thread(
            target=self._read, args=(self.proc.stdout,), name=f"tamper-{self.port}", daemon=True
        ).start()
        try:
            self._expect(lambda line: line.startswith("READY"), timeout, "READY")
        except BaseException:
            self.stop()
            raise
        return self

    def set_mode(self, name: str, timeout: float = 5.0) -> None:
        """Switch the picture to ``name`` and return once the camera's frames show it."""
        if name not in MODES:
            raise ValueError(f"unknown mode {name!r} (one of {', '.join(MODES)})")
        assert self.proc is not None and self.proc.stdin is not None, "camera not started"
        self.proc.stdin.write(name + "\n")
        self.proc.stdin.flush()
        self._expect(lambda line: line == f"MODE {name}", timeout, f"MODE {name}")
        self.mode = name

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                with suppress(OSError):  # a broken stdin pipe flushing on close
                    pipe.close()

    def __enter__(self) -> TamperCamera:
        if self.proc is None:
            self.start()
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _read(self, stdout: IO[str]) -> None:
        with suppress(ValueError):  # closed by stop()
            for line in stdout:
                self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def _expect(self, wanted: Callable[[str], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        seen: list[str] = []
        while True:
            left = deadline - time.monotonic()
            try:
                line = self._lines.get(timeout=max(0.0, left))
            except queue.Empty:
                break
            if line is None:  # the camera exited
                self._lines.put(None)
                break
            if wanted(line):
                return
            seen.append(line)
        log = self.log_path.read_text(errors="replace")[-2000:] if self.log_path.exists() else ""
        raise RuntimeError(
            f"tamper camera on port {self.port}: no {what} within {timeout} s"
            f" (stdout: {seen[-5:]}; stderr: {log})"
        )
