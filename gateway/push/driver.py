"""What both publishers do alike: drive a session without I/O over the uplink.

A :class:`SessionPublisher` owns the :class:`~gateway.push.transport.Uplink` and one session; it
runs the session's handshake, passes what the centre sends to the session and what the session
owes back to the centre, and closes with the session's goodbye. Each protocol's publisher says
only what differs: when the handshake is done, how a packet is sent, what is due on a tick.
"""

from __future__ import annotations

import socket
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from gateway.media.packet import Track
from gateway.push.transport import PushError, Uplink

__all__ = ["Session", "SessionPublisher"]


class Session(Protocol):
    """The part of a protocol session the driver uses (RTMP's and RTSP's)."""

    skipped: list[Track]

    @property
    def waiting_for(self) -> str: ...

    def start(self) -> bytes: ...

    def receive(self, data: bytes) -> object: ...

    def data_to_send(self) -> bytes: ...

    def closed(self) -> PushError: ...


S = TypeVar("S", bound=Session)


class SessionPublisher(ABC, Generic[S]):
    """A :class:`~gateway.push.publisher.Publisher` made of an uplink and a session."""

    close_within = 1.0
    """Seconds the goodbye and the end of the connection may take."""
    linger = False
    """End the connection gracefully (see :meth:`Uplink.close`)."""

    def __init__(self, sock: socket.socket, session: S, *, timeout: float) -> None:
        self._uplink = Uplink(sock, timeout=timeout)
        self._session = session
        self.skipped = session.skipped
        self._closed = False

    @property
    def ready(self) -> bool:
        return self._uplink.ready

    @property
    def bytes_sent(self) -> int:
        return self._uplink.bytes_sent

    def _handshake(self, done: Callable[[], bool], *, deadline_per_request: bool) -> None:
        """Run the session's exchange until ``done``: within the uplink's timeout in all, or
        for each request sent (``deadline_per_request``)."""
        uplink, session = self._uplink, self._session
        deadline = time.monotonic() + uplink.timeout
        uplink.write(session.start())
        if deadline_per_request:
            deadline = time.monotonic() + uplink.timeout
        while not done():
            data = uplink.receive(deadline, session.waiting_for)
            if not data:
                raise session.closed()
            session.receive(data)
            reply = session.data_to_send()
            if reply:
                uplink.write(reply)
                if deadline_per_request:
                    deadline = time.monotonic() + uplink.timeout

    def _send(self, data: bytes | bytearray, *, wait: bool) -> None:
        if data:
            self._uplink.write(data, wait=wait)

    def poll(self) -> None:
        if self._closed:
            return
        uplink, session = self._uplink, self._session
        if uplink.pending:
            uplink.write(b"")
        drained = uplink.drain()
        if drained.data:
            session.receive(drained.data)
            reply = session.data_to_send()
            if reply:
                uplink.write(reply)
        if drained.error is not None:
            raise drained.error
        if drained.closed:
            raise session.closed()
        due = self._due(time.monotonic())
        if due:
            uplink.write(due)

    def _due(self, now: float) -> bytes:
        """What the session owes the centre at ``now`` besides its answers (none by default)."""
        return b""

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._uplink.close(self._goodbye(), within=self.close_within, linger=self.linger)

    @abstractmethod
    def _goodbye(self) -> bytes:
        """What the centre is told last, as the session closes."""
