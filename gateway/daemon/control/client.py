"""The control socket's client: what the command line uses to ask the running daemon."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

from gateway.daemon.control.protocol import MAX_ANSWER, ControlError, encode, short

__all__ = ["answers", "call"]


def call(path: Path, request: dict[str, Any], *, timeout: float = 15.0) -> dict[str, Any]:
    """Send one request to the daemon and return its answer."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        _connect(sock, path, timeout)
    except BlockingIOError:
        sock.close()
        raise ControlError(f"the daemon's control socket {path} is too busy to answer") from None
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
            sock.sendall(encode(request))
            answer = _read_line(sock, MAX_ANSWER)
        except (OSError, ValueError, RecursionError) as exc:
            raise ControlError(f"no usable answer from the daemon: {short(exc)}") from None
    if not isinstance(answer, dict):
        raise ControlError("no usable answer from the daemon")
    return answer


def _connect(sock: socket.socket, path: Path, timeout: float) -> None:
    """Connect, waiting while the daemon's backlog is full: with a timeout set, a Unix socket's
    connect fails at once (EAGAIN) instead of waiting for room, as a blocking one would."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            sock.connect(str(path))
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


def _read_line(sock: socket.socket, limit: int) -> Any:
    buffer = bytearray()
    while b"\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            break
        buffer += chunk
        if len(buffer) > limit:
            raise ValueError("too long")
    line = bytes(buffer).split(b"\n", 1)[0]
    if not line:
        raise ValueError("empty")
    return json.loads(line)


def answers(path: Path) -> bool:
    """Whether a daemon answers on ``path`` (a live socket, not a stale file)."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1)
    try:
        probe.connect(str(path))
    except OSError:
        return False
    finally:
        probe.close()
    return True
