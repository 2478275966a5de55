"""The local control socket: how the command line talks to the running daemon.

A Unix stream socket (mode 0660): one JSON request per line, one JSON answer per line. The
daemon learns who is asking from the kernel (``SO_PEERCRED``), not from the request, and
records it with every forward command. Commands: ``forward`` and ``status``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pwd
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ControlError", "ControlServer", "Peer", "call"]

log = logging.getLogger(__name__)

_MAX_REQUEST = 64 * 1024


class ControlError(Exception):
    """The daemon could not be reached, or answered something unreadable."""


@dataclass(frozen=True, slots=True)
class Peer:
    pid: int
    uid: int

    @property
    def user(self) -> str:
        try:
            return pwd.getpwuid(self.uid).pw_name
        except KeyError:
            return str(self.uid)

    def describe(self) -> str:
        return f"local user {self.user} (uid {self.uid}, pid {self.pid})"


Handler = Callable[[dict[str, Any], Peer], dict[str, Any]]


class ControlServer:
    """Serves ``path`` in a background thread; each connection on its own short thread."""

    def __init__(self, path: Path, handler: Handler) -> None:
        self.path = path
        self._handler = handler
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Bind the socket; raise OSError with a clear message if that is impossible."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
        if self.path.exists():
            if _answers(self.path):
                raise OSError(f"{self.path} is in use by another running daemon")
            self.path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(str(self.path))
        os.chmod(self.path, 0o660)
        sock.listen(16)
        sock.settimeout(0.5)
        self._sock = sock
        self._thread = threading.Thread(target=self._serve, name="gateway:control", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
        if self._sock is not None:
            self._sock.close()
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    def _serve(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                continue
            threading.Thread(
                target=self._answer, args=(conn,), name="gateway:control-request", daemon=True
            ).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            pid, uid, _ = struct.unpack(
                "3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
            )
            peer = Peer(pid=pid, uid=uid)
            try:
                request = _read_line(conn)
                if not isinstance(request, dict):
                    raise ValueError("a request is a JSON object")
                answer = self._handler(request, peer)
            except ValueError as exc:
                answer = {"ok": False, "message": f"bad request: {exc}"}
            except Exception:
                log.exception("control request failed")
                answer = {"ok": False, "message": "internal error; see the daemon's log"}
            with contextlib.suppress(OSError):
                conn.sendall(json.dumps(answer).encode() + b"\n")


def call(path: Path, request: dict[str, Any], *, timeout: float = 15.0) -> dict[str, Any]:
    """Send one request to the daemon and return its answer."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(path))
    except (FileNotFoundError, ConnectionRefusedError):
        sock.close()
        raise ControlError(f"the daemon is not running (no control socket at {path})") from None
    except PermissionError:
        sock.close()
        raise ControlError(
            f"not allowed to use {path} (run as root or the daemon's group)"
        ) from None
    with sock:
        try:
            sock.sendall(json.dumps(request).encode() + b"\n")
            answer = _read_line(sock)
        except (OSError, ValueError) as exc:
            raise ControlError(f"no usable answer from the daemon: {exc}") from None
    if not isinstance(answer, dict):
        raise ControlError("no usable answer from the daemon")
    return answer


def _read_line(sock: socket.socket) -> Any:
    buffer = bytearray()
    while b"\n" not in buffer:
        chunk = sock.recv(4096)
        if not chunk:
            break
        buffer += chunk
        if len(buffer) > _MAX_REQUEST:
            raise ValueError("too long")
    line = bytes(buffer).split(b"\n", 1)[0]
    if not line:
        raise ValueError("empty")
    return json.loads(line)


def _answers(path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1)
    try:
        probe.connect(str(path))
    except OSError:
        return False
    finally:
        probe.close()
    return True
