"""The RTSP publisher: an :class:`~gateway.push.rtsp.session.RtspSession` driven over an
:class:`~gateway.push.transport.Uplink` (see :class:`~gateway.push.publisher.Publisher`).

Spoken over a socket from :func:`~gateway.push.transport.open_uplink`, so RTSPS gets the
same certificate checks as everything else, and nothing here holds the interpreter lock while
waiting on the network (FFmpeg's muxer does, during its whole handshake).
"""

from __future__ import annotations

import socket
import time

from gateway.media.packet import Packet, Track
from gateway.push.driver import SessionPublisher
from gateway.push.publisher import PushUrl
from gateway.push.rtsp.session import RtspSession

__all__ = ["RtspPublisher"]


class RtspPublisher(SessionPublisher[RtspSession]):
    """One RTSP RECORD session; tracks RTSP cannot carry are in :attr:`skipped`."""

    def __init__(
        self, sock: socket.socket, url: PushUrl, tracks: tuple[Track, ...], *, timeout: float
    ) -> None:
        super().__init__(sock, RtspSession(url, tracks), timeout=timeout)

    def start(self) -> None:
        """Each request gets the uplink's timeout for its answer."""
        session = self._session
        self._handshake(lambda: session.recording, deadline_per_request=True)

    def send(self, packet: Packet, *, wait: bool = True) -> None:
        self._send(self._session.send(packet, time.monotonic()), wait=wait)

    def _due(self, now: float) -> bytes:
        return self._session.poll(now)  # the keep-alive, when one is due

    def _goodbye(self) -> bytes:
        return self._session.close()
