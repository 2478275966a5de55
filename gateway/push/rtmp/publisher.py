"""The RTMP publisher: an :class:`~gateway.push.rtmp.session.RtmpSession` driven over an
:class:`~gateway.push.transport.Uplink` (see :class:`~gateway.push.publisher.Publisher`).

Spoken over a socket from :func:`~gateway.push.transport.open_uplink`, so RTMPS gets the same
certificate checks as everything else. Outgoing chunk size 4096, one write per message.
"""

from __future__ import annotations

import socket

from gateway.media.packet import Packet, Track
from gateway.push.driver import SessionPublisher
from gateway.push.publisher import PushUrl
from gateway.push.rtmp.session import RtmpSession

__all__ = ["RtmpPublisher"]


class RtmpPublisher(SessionPublisher[RtmpSession]):
    """One RTMP publish session; what it carries is :class:`~gateway.push.rtmp.media.FlvMedia`'s
    choice, the rest is in :attr:`skipped`."""

    close_within = 0.9
    linger = True

    def __init__(
        self, sock: socket.socket, url: PushUrl, tracks: tuple[Track, ...], *, timeout: float
    ) -> None:
        super().__init__(sock, RtmpSession(url, tracks), timeout=timeout)

    def start(self) -> None:
        """The whole exchange (handshake, connect, createStream, publish) within the timeout."""
        session = self._session
        self._handshake(lambda: session.publishing, deadline_per_request=False)

    def send(self, packet: Packet, *, wait: bool = True) -> None:
        self._send(self._session.send(packet), wait=wait)

    def _goodbye(self) -> bytes:
        session = self._session
        return b"" if session.failed else session.close()
