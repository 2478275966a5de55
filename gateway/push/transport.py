"""The uplink: the one place a push touches the network.

TCP, and TLS checked against a CA and/or pinned public keys, made with Python's ``ssl`` rather
than FFmpeg's TLS, which offers neither pinning nor client certificates on push. The checks
themselves live in :mod:`gateway.source.tls`, shared with the camera pull (``TlsPolicy`` and
``spki_sha256`` are re-exported here). An :class:`Uplink` writes through an :class:`Outbox`,
reads with one drain, and says what went wrong with one mapping of socket errors
(:func:`failure`); the protocol sessions never see a socket.
"""

from __future__ import annotations

import contextlib
import errno
import select
import socket
import ssl
import time
from typing import Literal, NamedTuple

from gateway.push.error import PushError
from gateway.source.tls import TlsError, TlsPolicy, secure, spki_sha256

__all__ = [
    "SEND_BUFFER",
    "Drained",
    "Outbox",
    "PushError",
    "TlsPolicy",
    "Uplink",
    "failure",
    "open_uplink",
    "spki_sha256",
    "writable",
]

SEND_BUFFER = 256 * 1024
_READ = 65536
_DRAIN_AT_MOST = 4 * 1024 * 1024
"""One drain stops there, so that a server flooding us cannot keep a poll going."""

Stage = Literal["connect", "send", "receive"]


def failure(exc: OSError, stage: Stage, *, timeout: float, what: str = "") -> PushError:
    """The one wording of a socket error (timeouts, resets, TLS) at each stage of a push.

    ``what`` is the peer (``host:port``) when connecting, what was awaited when receiving.
    """
    if stage == "connect":
        host = what.rsplit(":", 1)[0]
        if isinstance(exc, TimeoutError):
            return PushError(f"no answer from {what} within {timeout:g} s")
        if exc.errno == errno.ECONNREFUSED:
            return PushError(f"connection refused by {what}")
        if isinstance(exc, socket.gaierror):
            return PushError(f"cannot resolve {host}")
        if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            return PushError(f"{host} unreachable")
        return PushError(f"{what}: {_cause(exc)}")
    if isinstance(exc, TimeoutError):
        if stage == "send":
            return PushError(f"uplink stalled (nothing sent for {timeout:g} s)")
        return PushError(f"no answer to {what} within {timeout:g} s")
    during = f" during {what}" if what else ""
    return PushError(f"connection to the centre lost{during} ({_cause(exc)})")


def _cause(exc: OSError) -> str:
    if isinstance(exc, ssl.SSLError):
        return f"TLS: {getattr(exc, 'reason', None) or exc.strerror or 'error'}"
    return exc.strerror or type(exc).__name__


def open_uplink(host: str, port: int, *, tls: TlsPolicy | None, timeout: float) -> socket.socket:
    """Connect to the centre (and for TLS, verify it); raise :class:`PushError` on failure.

    The socket is blocking with ``timeout`` on every operation, keepalive on, and a send buffer
    small enough that a slow uplink shows up as back-pressure (dropped GOPs upstream) rather
    than as seconds of video queued in the kernel.
    """
    try:
        raw = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        raise failure(exc, "connect", timeout=timeout, what=f"{host}:{port}") from None
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

    Socket errors (timeouts, resets, TLS) propagate (:class:`Uplink` words them).
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


class Drained(NamedTuple):
    """What one drain got: the bytes, whether the centre closed, and a failure after them."""

    data: bytes
    closed: bool
    error: PushError | None


class Uplink:
    """An open connection to the centre, owned from construction on: every socket error comes
    out as a :class:`PushError` worded by :func:`failure`, and marks the uplink :attr:`broken`.
    """

    def __init__(self, sock: socket.socket, *, timeout: float) -> None:
        self._sock = sock
        self.timeout = timeout
        sock.settimeout(timeout)
        self._outbox = Outbox(sock)
        self.broken = False

    @property
    def bytes_sent(self) -> int:
        return self._outbox.bytes_sent

    @property
    def ready(self) -> bool:
        return self._outbox.ready

    @property
    def pending(self) -> bool:
        return self._outbox.pending

    def write(self, data: bytes | bytearray, *, wait: bool = True) -> None:
        """Send ``data`` after anything left from a write that did not wait; with ``wait``
        False, leave what the socket does not take at once for the next write."""
        try:
            self._outbox.write(data, wait=wait)
        except OSError as exc:
            self.broken = True
            raise failure(exc, "send", timeout=self.timeout) from None

    def receive(self, deadline: float, what: str) -> bytes:
        """Wait until the centre sends something (``b""``: it closed), at most until
        ``deadline`` (monotonic); ``what`` is the answer awaited, for the error."""
        while (left := deadline - time.monotonic()) > 0:
            data = self._recv(left, what)
            if data is not None:  # None: a TLS record not complete yet
                return data
        raise PushError(f"no answer to {what} within {self.timeout:g} s")

    def drain(self) -> Drained:
        """Whatever the centre sent, without waiting."""
        chunks: list[bytes] = []
        size = 0
        try:
            while size < _DRAIN_AT_MOST:
                data = self._recv(0.0, "")
                if data is None:
                    break
                if not data:
                    return Drained(b"".join(chunks), True, None)
                chunks.append(data)
                size += len(data)
        except PushError as exc:
            return Drained(b"".join(chunks), False, exc)
        return Drained(b"".join(chunks), False, None)

    def _recv(self, timeout: float, what: str) -> bytes | None:
        """One read, waiting at most ``timeout``; None if nothing came without waiting."""
        self._sock.settimeout(timeout)
        try:
            data = self._sock.recv(_READ)
        except (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return None
        except OSError as exc:
            if not isinstance(exc, TimeoutError):
                self.broken = True
            raise failure(exc, "receive", timeout=self.timeout, what=what) from None
        finally:
            self._sock.settimeout(self.timeout)
        if not data:
            self.broken = True
        return data

    def close(self, goodbye: bytes = b"", *, within: float = 0.0, linger: bool = False) -> None:
        """Send ``goodbye`` (after anything pending) and close, all within about ``within``
        seconds; never raises.

        With ``linger``, the end is graceful: TLS close_notify, a half-close, and reading until
        the centre closes too, since closing with unread data would reset the connection and a
        reset can discard the end of the stream over there.
        """
        sock = self._sock
        deadline = time.monotonic() + within
        try:
            if goodbye and not self.broken:
                sock.settimeout(min(0.3, within) if linger else within)
                self._outbox.write(goodbye)
                if linger:
                    self._linger(deadline)
        except (OSError, ValueError):
            pass
        finally:
            with contextlib.suppress(OSError):
                sock.close()

    def _linger(self, deadline: float) -> None:
        sock = plain = self._sock
        if isinstance(sock, ssl.SSLSocket):
            sock.settimeout(max(0.05, (deadline - time.monotonic()) / 2))
            with contextlib.suppress(OSError, ValueError):
                plain = sock.unwrap()  # close_notify, and the centre's in return
        try:
            plain.shutdown(socket.SHUT_WR)
            while (left := deadline - time.monotonic()) > 0:
                plain.settimeout(left)
                if not plain.recv(_READ):
                    break
        finally:
            if plain is not sock:
                plain.close()
