"""The RTMP publisher: an :class:`~gateway.push.rtmp.session.RtmpSession` driven over an
:class:`~gateway.push.transport.Uplink` (see :class:`~gateway.push.publisher.Publisher`).

Spoken over a socket from :func:`~gateway.push.transport.open_uplink`, so RTMPS gets the same
certificate checks as everything else. Outgoing chunk size 4096, one write per message.
"""

from __future__ import annotations

import socket
import time

from gateway.media.packet import Packet, Track
from gateway.push.publisher import PushUrl
from gateway.push.rtmp.session import RtmpSession
from gateway.push.transport import Uplink

__all__ = ["RtmpPublisher"]

_CLOSE_WITHIN = 0.9


class RtmpPublisher:
    """One RTMP publish session; what it carries is :class:`~gateway.push.rtmp.media.FlvMedia`'s
    choice, the rest is in :attr:`skipped`."""

    def __init__(
        self, sock: socket.socket, url: PushUrl, tracks: tuple[Track, ...], *, timeout: float
    ) -> None:
        self._uplink = Uplink(sock, timeout=timeout)
        self._session = RtmpSession(url, tracks)
        self.skipped = self._session.skipped
        self._closed = False

    @property
    def ready(self) -> bool:
        return self._uplink.ready

    @property
    def bytes_sent(self) -> int:
        return self._uplink.bytes_sent

    def start(self) -> None:
        uplink, session = self._uplink, self._session
        deadline = time.monotonic() + uplink.timeout
        uplink.write(session.start())
        while not session.publishing:
            data = uplink.receive(deadline, session.waiting_for)
            if not data:
                raise session.closed()
            session.receive(data)
            uplink.write(session.data_to_send())

    def send(self, packet: Packet, *, wait: bool = True) -> None:
        data = self._session.send(packet)
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

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        session = self._session
        goodbye = b"" if session.failed else session.close()
        self._uplink.close(goodbye, within=_CLOSE_WITHIN, linger=True)
