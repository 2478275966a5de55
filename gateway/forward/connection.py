"""The uplink connection: TCP, and TLS checked against a CA and/or pinned public keys.

Made with Python's ``ssl`` rather than FFmpeg's TLS, which offers neither pinning nor client
certificates on push. The checks themselves live in :mod:`gateway.source.tls`, shared with the
camera pull (``TlsPolicy`` and ``spki_sha256`` are re-exported here). The publishers (RTSP, RTMP)
speak their protocol over the socket returned by :func:`open_uplink`.
"""

from __future__ import annotations

import errno
import select
import socket
import ssl

from gateway.source.tls import TlsError, TlsPolicy, secure, spki_sha256

__all__ = [
    "SEND_BUFFER",
    "Outbox",
    "PushError",
    "TlsPolicy",
    "open_uplink",
    "spki_sha256",
    "writable",
]

SEND_BUFFER = 256 * 1024


class PushError(Exception):
    """A push failed; ``reason`` is short and safe to show, ``auth`` marks refused credentials
    (retried slowly: retrying at once will not fix them)."""

    def __init__(self, reason: str, *, auth: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.auth = auth


def open_uplink(host: str, port: int, *, tls: TlsPolicy | None, timeout: float) -> socket.socket:
    """Connect to the centre (and for TLS, verify it); raise :class:`PushError` on failure.

    The socket is blocking with ``timeout`` on every operation, keepalive on, and a send buffer
    small enough that a slow uplink shows up as back-pressure (dropped GOPs upstream) rather
    than as seconds of video queued in the kernel.
    """
    try:
        raw = socket.create_connection((host, port), timeout=timeout)
    except TimeoutError:
        raise PushError(f"no answer from {host}:{port} within {timeout:g} s") from None
    except OSError as exc:
        raise PushError(_socket_reason(exc, host, port)) from None
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
    if tls is None:
        return raw
    try:
        return secure(raw, host, tls, peer="server")
    except TlsError as exc:
        raise PushError(exc.reason) from None


def writable(sock: socket.socket) -> bool:
    """The kernel would wake a blocked writer now (a third of the send buffer is free).

    Writes that do not wait are made only then, so that they never keep the buffer full to
    the last byte: a blocked writer waits for that third to drain, and counts it as a stall
    if it takes longer than the uplink timeout.
    """
    poller = select.poll()  # not select(): descriptors above 1023 are common with many cameras
    poller.register(sock, select.POLLOUT)
    return bool(poller.poll(0))


class Outbox:
    """The writing side of an uplink: writes go out in order, each either waiting until it is
    sent or taking only what the socket accepts at once, the rest going first next time.

    Socket errors (timeouts, resets, TLS) propagate for the protocol to describe.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._pending: memoryview | None = None
        self.bytes_sent = 0

    @property
    def pending(self) -> bool:
        """Part of a write that did not wait is still to be sent."""
        return self._pending is not None

    @property
    def ready(self) -> bool:
        """A write that does not wait would go out whole or in part now."""
        return self._pending is None and writable(self._sock)

    def write(self, data: bytes | bytearray, *, wait: bool = True) -> None:
        """Send what is pending, then ``data``: all of it, or with ``wait`` False what the
        socket takes without blocking."""
        if self._pending is not None:
            self._sock.sendall(self._pending)
            self.bytes_sent += len(self._pending)
            self._pending = None
        if wait:
            self._sock.sendall(data)
            self.bytes_sent += len(data)
            return
        self._pending = _send_now(self._sock, data)
        self.bytes_sent += len(data) - (len(self._pending) if self._pending is not None else 0)


def _send_now(sock: socket.socket, data: bytes | bytearray) -> memoryview | None:
    """Write what the socket takes at once; what is left to send (None: all of it).

    Over TLS, a write that would block must later be retried with the same bytes, so all of
    ``data`` is left.
    """
    timeout = sock.gettimeout()
    sock.settimeout(0)
    try:
        sent = sock.send(data)
    except (BlockingIOError, ssl.SSLWantWriteError):
        sent = 0
    finally:
        sock.settimeout(timeout)
    return None if sent >= len(data) else memoryview(data)[sent:]


def _socket_reason(exc: OSError, host: str, port: int) -> str:
    if exc.errno == errno.ECONNREFUSED:
        return f"connection refused by {host}:{port}"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve {host}"
    if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return f"{host} unreachable"
    return f"{host}:{port}: {exc.strerror or type(exc).__name__}"
