"""The RTSP publisher: an :class:`~gateway.push.rtsp.session.RtspSession` driven over an
:class:`~gateway.push.transport.Uplink` (see :class:`~gateway.push.publisher.Publisher`).

Spoken over a socket from :func:`~gateway.push.transport.open_uplink`, so RTSPS gets the same
certificate checks as everything else, and nothing here holds the interpreter lock while
waiting on the network (FFmpeg's muxer does, during its whole handshake).
"""

from __future__ import annotations

import socket
import time

from gateway.media.packet import Packet, Track
from gateway.push.publisher import PushUrl
from gateway.push.rtsp.session import RtspSession
from gateway.push.transport import Uplink

__all__ = ["RtspPublisher"]

_CLOSE_WITHIN = 1.0


class RtspPublisher:
    """One RTSP RECORD session; tracks RTSP cannot carry are in :attr:`skipped`."""

    def __init__(
        self, sock: socket.socket, url: PushUrl, tracks: tuple[Track, ...], *, timeout: float
    ) -> None:
        self._uplink = Uplink(sock, timeout=timeout)
        self._session = RtspSession(url, tracks)
        self.skipped = self._session.skipped
        self._closed = False

    @property
    def ready(self) -> bool:
        return self._uplink.ready

    @property
    def bytes_sent(self) -> int:
        return self._uplink.bytes_sent

    def start(self) -> None:
        """Each request gets the uplink's timeout for its answer."""
        uplink, session = self._uplink, self._session
        uplink.write(session.start())
        deadline = time.monotonic() + uplink.timeout
        while not session.recording:
            data = uplink.receive(deadline, session.waiting_for)
            if not data:
                raise session.closed()
            session.receive(data)
            request = session.data_to_send()
            if request:
                uplink.write(request)
                deadline = time.monotonic() + uplink.timeout

    def send(self, packet: Packet, *, wait: bool = True) -> None:
        data = self._session.send(packet, time.monotonic())
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
        if drained.error is not None:
            raise drained.error
        if drained.closed:
            raise session.closed()
        keepalive = session.poll(time.monotonic())
        if keepalive:
            uplink.write(keepalive)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._uplink.close(self._session.close(), within=_CLOSE_WITHIN)
