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
import select
import socket
import threading
import time

__all__ = [
    "MAX_MESSAGE",
    "Channel",
    "ChannelClosedError",
    "ChannelError",
    "channel_pair",
    "recv_fds",
    "send_fds",
]

MAX_MESSAGE = 64 * 1024
"""Largest message either side accepts (and below the socket's default buffer, so that a
sequenced packet always fits). Status reports are about 1 KB; a worker that sends more is
broken or hostile, and is treated as such."""
SEND_TIMEOUT = 5.0
"""Default longest wait for the peer to make room. A message that cannot go in that time is
not sent (the caller is told): a busy peer is never mistaken for a dead one."""


class ChannelError(Exception):
    """The peer sent something this side cannot accept (too long, truncated)."""


class ChannelClosedError(ChannelError):
    """The peer closed its end: the process exited or was killed."""


class Channel:
    """One end of a worker channel. Owns its socket, which is non-blocking: each call waits on
    its own deadline (a socket timeout would be shared between the sending and receiving
    threads)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._send_lock = threading.Lock()
        sock.setblocking(False)

    def fileno(self) -> int:
        return self._sock.fileno()

    @property
    def socket(self) -> socket.socket:
        return self._sock

    def send(self, data: bytes, timeout: float = SEND_TIMEOUT) -> bool:
        """Send one message whole; False if the peer made no room within ``timeout`` (0: do not
        wait). Raises :class:`ChannelClosedError` if the peer is gone."""
        if len(data) > MAX_MESSAGE:
            raise ChannelError(f"message of {len(data)} bytes exceeds {MAX_MESSAGE}")
        deadline = time.monotonic() + timeout
        with self._send_lock:
            while True:
                try:
                    self._sock.send(data)
                    return True
                except BlockingIOError:
                    pass
                except (OSError, ValueError) as exc:
                    raise ChannelClosedError(f"peer gone ({type(exc).__name__})") from None
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                _wait(self._sock, select.POLLOUT, remaining)

    def recv(self, timeout: float | None) -> bytes | None:
        """The next message, or None if none came within ``timeout`` (0: do not wait)."""
        if timeout != 0 and not _wait(self._sock, select.POLLIN, timeout):
            return None
        try:
            data, _, flags, _ = self._sock.recvmsg(MAX_MESSAGE + 1)
        except BlockingIOError:
            return None
        except OSError as exc:
            raise ChannelClosedError(f"peer gone ({exc.strerror or type(exc).__name__})") from None
        if not data:
            raise ChannelClosedError("peer closed the channel")
        if flags & socket.MSG_TRUNC or len(data) > MAX_MESSAGE:
            raise ChannelError(f"message longer than {MAX_MESSAGE} bytes")
        return data

    def close(self) -> None:
        self._sock.close()


def _wait(sock: socket.socket, event: int, timeout: float | None) -> bool:
    """Wait until ``sock`` is ready for ``event`` (or hung up); False on timeout."""
    poller = select.poll()
    poller.register(sock, event)
    return bool(poller.poll(None if timeout is None else max(0, int(timeout * 1000))))


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
