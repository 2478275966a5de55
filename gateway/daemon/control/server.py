"""Longer than 400 lines: one event loop (accept, admit or evict, read, answer, cut the late),
whose connection states are best read together.

The control socket's server: one thread reads every connection (``epoll``), a few carry out
requests; the bounds it holds clients to are in :mod:`gateway.daemon.control.protocol`."""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import math
import os
import selectors
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.daemon.control.client import answers
from gateway.daemon.control.protocol import (
    ANSWER_DEADLINE,
    EVICT_AFTER,
    HANDLER_THREADS,
    MAX_CONNECTIONS,
    MAX_PER_PROCESS,
    MAX_REQUEST,
    REQUEST_DEADLINE,
    Peer,
    encode,
    short,
)
from gateway.ratelimit import RateLimitedLog

__all__ = ["ControlServer", "Handler"]

log = logging.getLogger(__name__)

_ACCEPT_BATCH = 64
"""Connections accepted per turn of the loop, so a connection flood cannot starve the reads; also
the listening backlog."""
_TICK = 0.5
"""Longest sleep of the loop: how soon a stop is noticed at worst."""


Handler = Callable[[dict[str, Any], Peer], dict[str, Any]]


@dataclass(eq=False, slots=True)
class _Connection:
    sock: socket.socket
    peer: Peer
    accepted: float
    deadline: float
    inbox: bytearray = field(default_factory=bytearray)
    outbox: bytes = b""
    reading: bool = True
    """True until the request line is complete; only a reading connection may be cut early."""


_TOO_MANY = encode(
    {
        "ok": False,
        "message": (
            f"too many connections to the control socket (at most {MAX_CONNECTIONS}); "
            "try again in a few seconds"
        ),
    }
)
_TOO_MANY_HERE = encode(
    {
        "ok": False,
        "message": (
            f"too many connections from this process (at most {MAX_PER_PROCESS} at once); "
            "close one first"
        ),
    }
)
_TOO_SLOW = encode(
    {
        "ok": False,
        "message": f"bad request: no complete request line within {REQUEST_DEADLINE:g} s",
    }
)


class ControlServer:
    """Serves ``path`` from one background thread; requests run on a few handler threads."""

    def __init__(
        self,
        path: Path,
        handler: Handler,
        *,
        max_connections: int = MAX_CONNECTIONS,
        request_deadline: float = REQUEST_DEADLINE,
    ) -> None:
        self.path = path
        self._handler = handler
        self._max_connections = max_connections
        self._request_deadline = request_deadline
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._connections: set[_Connection] = set()
        """Every open connection; owned by the server thread."""
        self._per_process: dict[int, int] = {}
        """Open connections per client process (``SO_PEERCRED`` pid)."""
        self._answered: deque[tuple[_Connection, bytes]] = deque()
        """Answers from the handler threads, for the server thread to send."""
        self._pool = ThreadPoolExecutor(HANDLER_THREADS, thread_name_prefix="gateway:control")
        self._flood = RateLimitedLog(
            log, "control socket: %d more connections refused in the last minute"
        )
        self._failures = RateLimitedLog(
            log, "control socket: %d more requests failed in the last minute", level=logging.ERROR
        )

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def open_connections(self) -> int:
        """Connections open now (for tests and diagnostics)."""
        return len(self._connections)

    def start(self) -> None:
        """Bind the socket; raise OSError with a clear message if that is impossible."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
        if self.path.exists():
            if answers(self.path):
                raise OSError(f"{self.path} is in use by another running daemon")
            self.path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(str(self.path))
        os.chmod(self.path, 0o660)
        sock.listen(_ACCEPT_BATCH)
        sock.setblocking(False)
        self._sock = sock
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._thread = threading.Thread(target=self._serve, name="gateway:control", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake()
        if self._thread is not None:
            self._thread.join(2)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._flood.close()
        self._failures.close()
        if self._sock is not None:
            self._sock.close()
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    # -- the server thread ---------------------------------------------------------------------

    def _serve(self) -> None:
        # For mypy: start() sets all three before it starts this thread.
        assert self._sock is not None and self._wake_r is not None and self._wake_w is not None  # noqa: S101
        selector = selectors.DefaultSelector()
        selector.register(self._sock, selectors.EVENT_READ)
        selector.register(self._wake_r, selectors.EVENT_READ)
        try:
            while not self._stop.is_set():
                try:
                    self._turn(selector)
                except Exception:
                    # A client must not be able to end the socket through a bug it triggers.
                    self._failures.log("control socket: unexpected error", exc_info=True)
                    self._stop.wait(0.05)
        finally:
            for connection in list(self._connections):
                self._close(selector, connection)
            selector.close()
            self._wake_r.close()
            self._wake_w.close()

    def _turn(self, selector: selectors.BaseSelector) -> None:
        """One turn of the loop: accept, read, write, then cut what is late."""
        for key, events in selector.select(self._timeout()):
            if key.fileobj is self._sock:
                self._accept(selector)
            elif key.fileobj is self._wake_r:
                assert self._wake_r is not None  # noqa: S101 - for mypy: start() set it
                with contextlib.suppress(OSError):
                    self._wake_r.recv(4096)
            elif isinstance(key.data, _Connection) and key.data in self._connections:
                if events & selectors.EVENT_READ:
                    self._read(selector, key.data)
                elif events & selectors.EVENT_WRITE:
                    self._write(selector, key.data)
        self._send_answers(selector)
        self._cut_late(selector)

    def _timeout(self) -> float:
        if not self._connections:
            return _TICK
        soonest = min(c.deadline for c in self._connections)
        return max(0.0, min(_TICK, soonest - time.monotonic()))

    def _accept(self, selector: selectors.BaseSelector) -> None:
        assert self._sock is not None  # noqa: S101 - for mypy: start() set it
        for _ in range(_ACCEPT_BATCH):
            try:
                sock, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                # Out of descriptors, say: leave the connection in the backlog, and pause rather
                # than spin on a listening socket that stays readable.
                self._flood.log("control socket: cannot accept a connection: %s", exc.strerror)
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    self._stop.wait(0.05)
                return
            sock.setblocking(False)
            try:
                pid, uid, _ = struct.unpack(
                    "3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
                )
            except OSError:
                sock.close()
                continue
            first = _receive(sock)
            if first == b"":
                sock.close()  # connected and left at once (a liveness probe)
                continue
            now = time.monotonic()
            refusal = self._admit(selector, pid, now, ready=first is not None and b"\n" in first)
            if refusal is not None:
                self._refuse(sock, refusal, Peer(pid=pid, uid=uid))
                continue
            connection = _Connection(
                sock, Peer(pid=pid, uid=uid), now, now + self._request_deadline
            )
            self._connections.add(connection)
            self._per_process[pid] = self._per_process.get(pid, 0) + 1
            selector.register(sock, selectors.EVENT_READ, connection)
            if first is not None:
                self._take(selector, connection, first)

    def _admit(
        self, selector: selectors.BaseSelector, pid: int, now: float, *, ready: bool
    ) -> bytes | None:
        """Make room for a connection from ``pid``; the refusal to send it if there is none.

        A process holds at most :data:`MAX_PER_PROCESS` connections. When the table is full, the
        newcomer takes the place of an idle connection (no request line yet) if its own request
        line is already here, if that connection's process holds more connections than the
        newcomer's would, or if it has been idle for :data:`EVICT_AFTER`; the oldest connection
        of the process holding the most goes first.
        """
        mine = self._per_process.get(pid, 0)
        if mine >= MAX_PER_PROCESS:
            return _TOO_MANY_HERE
        if len(self._connections) < self._max_connections:
            return None
        candidates = [
            c
            for c in self._connections
            if c.reading
            and (
                ready
                or self._per_process.get(c.peer.pid, 0) > mine + 1
                or now - c.accepted >= EVICT_AFTER
            )
        ]
        if not candidates:
            return _TOO_MANY
        victim = min(candidates, key=lambda c: (-self._per_process.get(c.peer.pid, 0), c.accepted))
        with contextlib.suppress(OSError):
            victim.sock.send(_TOO_MANY)
        self._close(selector, victim)
        self._log_flood(victim.peer)
        return None

    def _refuse(self, sock: socket.socket, refusal: bytes, peer: Peer) -> None:
        with contextlib.suppress(OSError):
            sock.send(refusal)
        sock.close()
        self._log_flood(peer)

    def _log_flood(self, peer: Peer) -> None:
        self._flood.log(
            "control socket: a connection of pid %d (uid %d) refused: %d open, at most %d, and "
            "at most %d per process; a local client may be flooding the socket",
            peer.pid,
            peer.uid,
            len(self._connections),
            self._max_connections,
            MAX_PER_PROCESS,
        )

    def _read(self, selector: selectors.BaseSelector, connection: _Connection) -> None:
        chunk = _receive(connection.sock)
        if chunk is not None:
            self._take(selector, connection, chunk)

    def _take(
        self, selector: selectors.BaseSelector, connection: _Connection, chunk: bytes
    ) -> None:
        """Add what a client sent; once its request line is complete, hand it to a handler."""
        if not chunk and not connection.inbox:
            self._close(selector, connection)
            return
        connection.inbox += chunk
        if len(connection.inbox) > MAX_REQUEST:
            self._answer(selector, connection, {"ok": False, "message": "bad request: too long"})
            return
        if chunk and b"\n" not in chunk:
            return
        line = bytes(connection.inbox).split(b"\n", 1)[0]
        connection.reading = False
        connection.deadline = math.inf  # being carried out: never cut halfway
        selector.unregister(connection.sock)
        self._pool.submit(self._handle, connection, line)

    def _answer(
        self, selector: selectors.BaseSelector, connection: _Connection, answer: dict[str, Any]
    ) -> None:
        if connection.reading:
            connection.reading = False
            selector.unregister(connection.sock)
        self._start_sending(selector, connection, encode(answer))

    def _send_answers(self, selector: selectors.BaseSelector) -> None:
        while self._answered:
            connection, data = self._answered.popleft()
            if connection in self._connections:
                self._start_sending(selector, connection, data)

    def _start_sending(
        self, selector: selectors.BaseSelector, connection: _Connection, data: bytes
    ) -> None:
        connection.outbox = data
        connection.deadline = time.monotonic() + ANSWER_DEADLINE
        if self._flush(connection):
            self._close(selector, connection)
        else:
            selector.register(connection.sock, selectors.EVENT_WRITE, connection)

    def _write(self, selector: selectors.BaseSelector, connection: _Connection) -> None:
        if self._flush(connection):
            self._close(selector, connection)

    @staticmethod
    def _flush(connection: _Connection) -> bool:
        """Send what the socket takes now; True once everything is sent or the peer is gone."""
        try:
            sent = connection.sock.send(connection.outbox)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            return True
        connection.outbox = connection.outbox[sent:]
        return not connection.outbox

    def _cut_late(self, selector: selectors.BaseSelector) -> None:
        now = time.monotonic()
        for connection in [c for c in self._connections if c.deadline <= now]:
            if connection.reading:
                with contextlib.suppress(OSError):
                    connection.sock.send(_TOO_SLOW)
            self._close(selector, connection)

    def _close(self, selector: selectors.BaseSelector, connection: _Connection) -> None:
        if connection in self._connections:
            self._connections.discard(connection)
            pid = connection.peer.pid
            self._per_process[pid] -= 1
            if not self._per_process[pid]:
                del self._per_process[pid]
        with contextlib.suppress(KeyError, ValueError):
            selector.unregister(connection.sock)
        connection.sock.close()

    def _wake(self) -> None:
        if self._wake_w is not None:
            with contextlib.suppress(OSError):
                self._wake_w.send(b"\0")

    # -- the handler threads -------------------------------------------------------------------

    def _handle(self, connection: _Connection, line: bytes) -> None:
        answer = self._carry_out(line, connection.peer)
        try:
            data = encode(answer)
        except (TypeError, ValueError):
            self._failures.log("control request: unserialisable answer", exc_info=True)
            data = encode({"ok": False, "message": "internal error; see the daemon's log"})
        self._answered.append((connection, data))
        self._wake()

    def _carry_out(self, line: bytes, peer: Peer) -> dict[str, Any]:
        if not line.strip():
            return {"ok": False, "message": "bad request: empty"}
        try:
            request = json.loads(line)
        except RecursionError:
            return {"ok": False, "message": "bad request: nested too deeply"}
        except ValueError as exc:
            return {"ok": False, "message": f"bad request: {short(exc)}"}
        if not isinstance(request, dict):
            return {"ok": False, "message": "bad request: a request is a JSON object"}
        try:
            return self._handler(request, peer)
        except ValueError as exc:
            return {"ok": False, "message": f"bad request: {short(exc)}"}
        except Exception:
            self._failures.log("control request failed", exc_info=True)
            return {"ok": False, "message": "internal error; see the daemon's log"}


def _receive(sock: socket.socket) -> bytes | None:
    """What the socket holds now: bytes, ``b""`` once the peer is gone, None if nothing yet."""
    try:
        return sock.recv(4096)
    except (BlockingIOError, InterruptedError):
        return None
    except OSError:
        return b""
