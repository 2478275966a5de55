"""The channel between a camera worker and its supervisor: one Unix ``SOCK_SEQPACKET`` pair.

Sequenced packets keep message boundaries (no framing of our own) and are reliable and
ordered. A message is at most :data:`MAX_MESSAGE` bytes: a longer one is refused when sent,
and one that arrives truncated (``MSG_TRUNC``) is an error, never half-parsed. Sending is
thread-safe; receiving belongs to one thread.
"""

from __future__ import annotations

import array
import contextlib
import os
import socket
import threading

__all__ = [
    "MAX_MESSAGE",
    "Channel",
    "ChannelClosedError",
    "ChannelError",
    "channel_pair",
    "recv_fds",
    "send_fds",
]

MAX_MESSAGE = 256 * 1024
"""Largest message either side accepts. Status reports are ~1 KB; a worker that sends more is
broken or hostile, and is treated as such."""
SEND_TIMEOUT = 5.0
"""Longest a send may wait for the peer to read: the supervisor reads every worker at once, so
waiting longer means it is wedged (a worker) or the worker is (the supervisor)."""


class ChannelError(Exception):
    """The peer sent something this side cannot accept (too long, truncated)."""


class ChannelClosedError(ChannelError):
    """The peer closed its end: the process exited or was killed."""


class Channel:
    """One end of a worker channel. Owns its socket."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._send_lock = threading.Lock()
        sock.settimeout(SEND_TIMEOUT)

    def fileno(self) -> int:
        return self._sock.fileno()

    @property
    def socket(self) -> socket.socket:
        return self._sock

    def send(self, data: bytes) -> None:
        """Send one message; raise :class:`ChannelClosedError` if the peer is gone or does not read
        within :data:`SEND_TIMEOUT`."""
        if len(data) > MAX_MESSAGE:
            raise ChannelError(f"message of {len(data)} bytes exceeds {MAX_MESSAGE}")
        with self._send_lock:
            try:
                self._sock.sendall(data)
            except (OSError, ValueError) as exc:
                raise ChannelClosedError(f"peer gone ({type(exc).__name__})") from None

    def recv(self, timeout: float | None) -> bytes | None:
        """The next message, or None if none came within ``timeout`` (0: do not wait)."""
        self._sock.settimeout(timeout)
        try:
            data, _, flags, _ = self._sock.recvmsg(MAX_MESSAGE + 1)
        except (TimeoutError, BlockingIOError):
            return None
        except OSError as exc:
            raise ChannelClosedError(f"peer gone ({exc.strerror or type(exc).__name__})") from None
        finally:
            self._sock.settimeout(SEND_TIMEOUT)
        if not data:
            raise ChannelClosedError("peer closed the channel")
        if flags & socket.MSG_TRUNC or len(data) > MAX_MESSAGE:
            raise ChannelError(f"message longer than {MAX_MESSAGE} bytes")
        return data

    def close(self) -> None:
        self._sock.close()


def channel_pair() -> tuple[socket.socket, socket.socket]:
    """A connected pair of sockets for a new worker (supervisor's end, worker's end)."""
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)


def send_fds(sock: socket.socket, data: bytes, fds: list[int]) -> None:
    """Send one message with file descriptors attached (``SCM_RIGHTS``)."""
    sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])


def recv_fds(sock: socket.socket, size: int, max_fds: int) -> tuple[bytes, list[int]]:
    """Receive one message and the descriptors attached to it (b'' at end of stream)."""
    fds = array.array("i")
    data, ancdata, flags, _ = sock.recvmsg(size, socket.CMSG_SPACE(max_fds * fds.itemsize))
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            usable = len(payload) - len(payload) % fds.itemsize
            fds.frombytes(payload[:usable])
    if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
        for fd in fds:
            _close_quietly(fd)
        raise ChannelError("message or descriptors truncated")
    return data, list(fds)


def _close_quietly(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)
